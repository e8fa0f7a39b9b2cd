"""A journey world for tests: the campaign service and the journey engine on the real adapters under moto (campaigns
table; send orders collected instead of going on the bus) with an injected clock (`world` fixture in conftest)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto import mock_aws

from cdp import topology
from cdp.campaigns.dynamodb import DynamoCampaignCatalog
from cdp.campaigns.journeys import JourneyEngine, SendOrders, holdout_group
from cdp.campaigns.journeys_dynamodb import DynamoJourneyStore, DynamoSweepStore
from cdp.campaigns.lifecycle import CampaignService, parse_definition
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.stepfunctions import StepFunctionsRunner
from cdp.channels.models import SendBatchRequest
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory
from cdp_local.runtime.core import create_table
from tests.fakes.profiles import InMemoryProfiles

SAMPLE = Path(__file__).resolve().parents[3] / "events" / "campaigns" / "abandoned_cart.yaml"
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
BRAND = "demo-brand"
MARKETER = ApiClient("marketer", frozenset({"campaigns:write", "campaigns:read"}))
ORG = OrgDirectory.model_validate({"brands": {BRAND: {"group_id": "demo-group"}}})


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Orders(SendOrders):
    """What the bus would carry to the send function (the send path itself is tested with the send handler)."""

    sent: list[SendBatchRequest] = field(default_factory=list)

    def order(self, requests: list[SendBatchRequest]) -> None:
        self.sent.extend(requests)

    def steps_of(self, person_id: str) -> list[str]:
        return [r.step for r in self.sent if r.person_ids == [person_id]]


@dataclass
class World:
    service: CampaignService
    engine: JourneyEngine
    orders: Orders
    clock: Clock
    profiles: InMemoryProfiles
    sweeps: DynamoSweepStore

    def tick(self, at: datetime) -> int:
        self.clock.at = at
        return self.engine.advance_due(at)

    def event(
        self, person: str, event_type: str, event_id: str | None = None, keys: dict[str, list[str]] | None = None
    ) -> list[str]:
        event_id = event_id or f"{event_type}-{person}-{self.clock.at}"
        return self.engine.on_event(BRAND, person, event_type, event_id, keys)


@contextmanager
def make_world() -> Iterator[World]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb, topology.CAMPAIGNS_TABLE)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
        arn = sfn.create_state_machine(name="m", definition=machine, roleArn="arn:aws:iam::123456789012:role/r")
        catalog = DynamoCampaignCatalog(topology.CAMPAIGNS_TABLE.local_name, client=ddb)
        store = DynamoJourneyStore(topology.CAMPAIGNS_TABLE.local_name, client=ddb)
        clock, orders, profiles = Clock(T0), Orders(), InMemoryProfiles()
        runner = StepFunctionsRunner(arn["stateMachineArn"], client=sfn)
        artifacts = S3ArtifactStore(topology.DATA_BUCKET_LOCAL_NAME)
        service = CampaignService(catalog, runner, artifacts, ORG, now=clock, journeys=store)
        engine = JourneyEngine(catalog, store, orders, profiles, now=clock, clock=lambda: 0.0, org=ORG)
        yield World(
            service, engine, orders, clock, profiles, DynamoSweepStore(topology.CAMPAIGNS_TABLE.local_name, ddb)
        )


def journey(**changes: Any) -> Any:
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    raw.update(changes)
    return parse_definition(raw)


def live(world: World, **changes: Any) -> None:
    world.service.define(journey(**changes), MARKETER)
    world.service.activate(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()  # what the journey function does at each batch


def treated(n: int, share: float = 0.1) -> list[str]:
    """Person ids the stable split puts in the treatment group of abandoned_cart."""
    return [p for p in (f"p{i}" for i in range(200)) if holdout_group("abandoned_cart", p, share) == "treatment"][:n]
