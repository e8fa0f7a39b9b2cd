"""Priority between campaigns, on the real adapters under moto: a lower-priority send leaves the cap room a
higher-priority campaign's run due later the same day needs for the persons that run wants; with equal priorities,
for persons the run does not want, for a paused run, or for one due tomorrow, first come first served."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.campaigns.dynamodb import DynamoCampaignCatalog
from cdp.campaigns.journeys_dynamodb import DynamoDeferredSends
from cdp.campaigns.lifecycle import CampaignService, parse_definition
from cdp.campaigns.planned import CatalogPlannedRuns
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.stepfunctions import StepFunctionsRunner
from cdp.channels.contact import ContactRules
from cdp.channels.ledger import DynamoContactLedger
from cdp.channels.models import SendBatchRequest, SendBatchResult
from cdp.channels.service import send_batch
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory
from cdp.profile.models import ConsentState, Profile, TagValue
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb
from tests.fakes.channels import InMemorySendLedger, RecordingChannel
from tests.fakes.profiles import InMemoryProfiles

BRAND = "demo-brand"
MONDAY_10_SHANGHAI = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
MONDAY_18_SHANGHAI = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
MARKETER = ApiClient("marketer", frozenset({"campaigns:write", "campaigns:read"}))
ORG = OrgDirectory.model_validate(
    {
        "brands": {
            BRAND: {
                "group_id": "demo-group",
                "timezone": "Asia/Shanghai",
                "contact": {"caps": [{"channel": "sms", "max": 1, "per_days": 1}]},
            }
        }
    }
)
PASS_MACHINE = '{"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}'


@dataclass
class World:
    service: CampaignService
    contact: ContactRules
    profiles: InMemoryProfiles
    channel: RecordingChannel
    ledger: InMemorySendLedger

    def send(self, campaign: str, priority: int, at: datetime, person_ids: list[str]) -> SendBatchResult:
        request = SendBatchRequest.model_validate(
            {
                "campaign_id": campaign,
                "run_id": f"{campaign}-v1-{at:%Y%m%dT%H%MZ}",
                "brand_id": BRAND,
                "step": "touch1",
                "channel": "sms",
                "template": {"body": "hello"},
                "priority": priority,
                "person_ids": person_ids,
            }
        )
        channels = {"sms": self.channel}
        return send_batch(request, self.profiles, self.profiles, self.ledger, channels, at, contact=self.contact)


def person(person_id: str, vip: bool) -> Profile:
    since = MONDAY_10_SHANGHAI - timedelta(days=30)
    return Profile(
        person_id=person_id,
        brand_id=BRAND,
        created_at=since,
        updated_at=since,
        identifiers=[f"phone:+8613800{abs(hash(person_id)) % 1_000_000:06d}"],
        consent={"sms": ConsentState(granted=True, changed_at=since, source="app")},
        tags={"vip": TagValue(value=vip, since=since)},
    )


def birthday(priority: int, once: str = "2026-12-07T18:00") -> Any:
    return parse_definition(
        {
            "campaign_id": "vip_birthday",
            "brand_id": BRAND,
            "name": "VIP birthday SMS",
            "audience": {"all_of": [{"tag": "vip", "equals": True}]},
            "schedule": {"once": once},
            "steps": [{"send": {"channel": "sms", "template": {"body": "Happy birthday"}}}],
            "budget": {"amount_minor": 1_000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
            "priority": priority,
        }
    )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(), atomic_dynamodb():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb, topology.CAMPAIGNS_TABLE)
        create_table(ddb, topology.LEDGER_TABLE)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="cdp-campaign", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        catalog = DynamoCampaignCatalog(topology.CAMPAIGNS_TABLE.local_name, client=ddb)
        minutes = itertools.count(step=61)
        service = CampaignService(
            catalog,
            StepFunctionsRunner(arn, client=sfn),
            S3ArtifactStore(topology.DATA_BUCKET_LOCAL_NAME),
            ORG,
            now=lambda: MONDAY_10_SHANGHAI - timedelta(days=1),
        )
        contact = ContactRules(
            ORG,
            DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=ddb),
            DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=ddb),
            planned=CatalogPlannedRuns(catalog, clock=lambda: next(minutes)),  # each send reads the due list
        )
        profiles = InMemoryProfiles([person("ann", vip=True), person("bob", vip=False)])
        yield World(service, contact, profiles, RecordingChannel(), InMemorySendLedger())


def scheduled(world: World, definition: Any) -> None:
    world.service.define(definition, MARKETER)
    world.service.activate(BRAND, definition.campaign_id, MARKETER)


def test_a_morning_promotion_leaves_the_evening_birthday_run_its_room(world: World) -> None:
    # Given the VIP birthday campaign (priority 80) due at 18:00 and a cap of one SMS a day
    scheduled(world, birthday(priority=80))
    # When a promotion (priority 40) sends to both at 10:00
    promo = world.send("promo", 40, MONDAY_10_SHANGHAI, ["ann", "bob"])
    # Then bob (not a VIP) got it; ann's place is kept for her birthday message, with the reason on her timeline
    assert (promo.sent, promo.suppressed_priority, promo.suppressed_frequency_cap) == (1, 1, 0)
    assert [m.status for m in world.profiles.message_log if m.person_id == "ann"] == ["suppressed_priority"]
    # And at 18:00 the birthday run reaches her
    run = world.send("vip_birthday", 80, MONDAY_18_SHANGHAI, ["ann"])
    assert (run.sent, world.channel.sent_to()) == (1, ["bob", "ann"])


def test_equal_priorities_are_first_come_first_served(world: World) -> None:
    scheduled(world, birthday(priority=40))
    promo = world.send("promo", 40, MONDAY_10_SHANGHAI, ["ann"])
    run = world.send("vip_birthday", 40, MONDAY_18_SHANGHAI, ["ann"])
    assert (promo.sent, run.sent, run.suppressed_frequency_cap) == (1, 0, 1)


def test_a_higher_priority_send_does_not_wait_for_a_lower_run(world: World) -> None:
    scheduled(world, birthday(priority=20))
    assert world.send("service_recovery", 90, MONDAY_10_SHANGHAI, ["ann"]).sent == 1


def test_a_paused_run_or_one_due_tomorrow_keeps_no_room(world: World) -> None:
    scheduled(world, birthday(priority=80, once="2026-12-08T09:00"))  # tomorrow, Shanghai time
    assert world.send("promo", 40, MONDAY_10_SHANGHAI, ["ann"]).sent == 1
    world.contact.ledger.release(BRAND, "ann", "sms", MONDAY_10_SHANGHAI)
    paused = birthday(priority=80).model_copy(update={"campaign_id": "vip_birthday_2"})
    scheduled(world, paused)
    world.service.pause(BRAND, "vip_birthday_2", MARKETER)
    assert world.send("promo_2", 40, MONDAY_10_SHANGHAI + timedelta(minutes=5), ["ann"]).sent == 1
