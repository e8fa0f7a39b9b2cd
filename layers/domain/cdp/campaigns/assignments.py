"""A run's randomized groups on the persons' timelines: one `campaign_assigned` event per selected person (treatment
or holdout), so uplift models learn from the platform's own campaigns as they do from a previous tool's (who was
held out, not only who got the message; `cdp.models.labels.uplift_labels`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cdp.campaigns.models import CampaignRequest, Member
from cdp.identifiers.model import Identifier
from cdp.ingest.events import CanonicalEvent, MessageChannel, parse_event
from cdp.observability import logger

_NAMESPACE = uuid.UUID("5b0f7d1e-8c1a-4f7e-9a55-2f3c0e6a9d41")
_MESSAGE_CHANNELS = frozenset(c.value for c in MessageChannel)  # not the outbox: a file for another system to send


def assignment_event_id(run_id: str, person_id: str) -> str:
    """Stable per run and person: a retried selection files the same events, which ingest accepts once."""
    return f"assigned-{uuid.uuid5(_NAMESPACE, f'{run_id}#{person_id}')}"


def assignment_events(
    request: CampaignRequest,
    run_id: str,
    groups: Mapping[str, Sequence[Member]],
    anchors: Mapping[str, str],
    at: datetime,
    phone_region: str,
) -> list[CanonicalEvent]:
    """`groups`: "treatment" and "holdout" members; `anchors`: each person's identifier to file the event under (the
    one their timeline is kept by). A person without one is left out and logged: their group stays in audience.json."""
    events: list[CanonicalEvent] = []
    unanchored = 0
    for group, members in groups.items():
        for member in members:
            anchor = anchors.get(member.person_id)
            if anchor is None:
                unanchored += 1
                continue
            # the channel of the person's first send (an A/B/n arm may have its own); the holdout's: the run's touch1
            channel = request.first_touch(member.variant if group == "treatment" else None).channel
            raw: dict[str, Any] = {
                "event_id": assignment_event_id(run_id, member.person_id),
                "event_type": "campaign_assigned",
                "source": "cdp",
                "brand_id": request.brand_id,
                "occurred_at": at.isoformat(),
                "identifiers": [Identifier.from_key(anchor).model_dump(mode="json", exclude_none=True)],
                "properties": {
                    "campaign_id": request.campaign_id,
                    "group": group,
                    "channel": channel if channel in _MESSAGE_CHANNELS else None,
                    "run_id": run_id,
                },
            }
            try:
                events.append(parse_event(raw, phone_region=phone_region))
            except ValidationError as exc:  # an id the canonical model refuses: the group stays in audience.json
                unanchored += 1
                logger.error("an assignment event did not validate", person_id=member.person_id, error=str(exc))
    if unanchored:
        logger.warning("assignments not filed: no identifier to file them under", run_id=run_id, persons=unanchored)
    return events
