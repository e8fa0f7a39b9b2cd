"""Every file under events/ parses into its model: the samples are the contract and must never drift from code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel

from cdp.identity.events import ProfileMerged, ProfileUpdated
from cdp.ingest.events import EVENT_TYPES, parse_event
from cdp.ingest.service import split_body
from cdp.shared.envelope import BusEntry, EventMetadata
from cdp.tags.announcements import TagsChanged
from functions.identity_merge.handler import ReceivedData

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _canonical(data: Any) -> None:
    items, _ = split_body(json.dumps(data).encode())
    for item in items:
        parse_event(item)


def _bus(model: type[BaseModel]) -> Callable[[Any], None]:
    def check(data: Any) -> None:
        envelope = EventBridgeModel.model_validate(data)
        assert envelope.detail_type == model.event_name  # type: ignore[attr-defined]
        EventMetadata.model_validate(envelope.detail["metadata"])
        model.model_validate(envelope.detail["data"])

    return check


VALIDATORS: dict[str, Callable[[Any], None]] = {
    "eventbridge/event_received": lambda d: BusEntry[ReceivedData].model_validate(d),
    "eventbridge/profile_updated": _bus(ProfileUpdated),
    "eventbridge/profile_merged": _bus(ProfileMerged),
    "eventbridge/tags_changed": _bus(TagsChanged),
}


def _validator_for(path: Path) -> Callable[[Any], None]:
    rel = path.relative_to(EVENTS).as_posix().split(".")[0]
    if rel.startswith("canonical/"):
        return _canonical
    if rel in VALIDATORS:
        return VALIDATORS[rel]
    from tests.unit.sample_validators import EXTRA_VALIDATORS  # other contexts register their samples there

    if rel not in EXTRA_VALIDATORS:
        raise AssertionError(f"{path} has no validator: register one so the sample is checked")
    return EXTRA_VALIDATORS[rel]


SAMPLES = sorted(EVENTS.rglob("*.json"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.relative_to(EVENTS).as_posix())
def test_sample_parses(path: Path) -> None:
    # Given a sample file; When it is validated by its model; Then it parses without error
    _validator_for(path)(json.loads(path.read_text()))


def test_one_canonical_sample_per_event_type() -> None:
    present = {p.name.split(".")[0] for p in (EVENTS / "canonical").glob("*.v1.json")}
    assert set(EVENT_TYPES) <= present
