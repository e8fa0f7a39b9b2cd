"""Campaign lifecycle on the real adapters under moto: the campaigns table (versions, states, runs, the due list,
the switch) and runs started on a state machine, with an injected clock so a schedule's weeks pass in a test."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from cdp import topology
from cdp.campaigns.catalog import RunRecord
from cdp.campaigns.dynamodb import DynamoCampaignCatalog
from cdp.campaigns.lifecycle import CampaignService, SwitchRequest, authorize_campaigns, parse_definition
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.stepfunctions import StepFunctionsRunner
from cdp.errors import ConflictError, ForbiddenError, NotFoundError
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp_local.runtime.core import create_table

SAMPLE = Path(__file__).resolve().parents[3] / "events" / "campaigns" / "winter_cake_sms.yaml"
SUNDAY = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MONDAY_10_SHANGHAI = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
MARKETER = ApiClient("marketer", frozenset({"campaigns:write", "campaigns:read"}))
APPROVER = ApiClient("approver", frozenset({"campaigns:approve"}))
ORG = OrgDirectory.model_validate(
    {"brands": {"demo-brand": {"group_id": "demo-group", "campaigns": {"approval_above_sends": 1_000}}}}
)
PASS_MACHINE = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@dataclass
class World:
    service: CampaignService
    catalog: DynamoCampaignCatalog
    runner: StepFunctionsRunner
    clock: Clock


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb, topology.CAMPAIGNS_TABLE)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="cdp-campaign", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        catalog = DynamoCampaignCatalog(topology.CAMPAIGNS_TABLE.local_name, client=ddb)
        runner = StepFunctionsRunner(arn, client=sfn)
        clock = Clock(SUNDAY)
        artifacts = S3ArtifactStore(topology.DATA_BUCKET_LOCAL_NAME)
        yield World(CampaignService(catalog, runner, artifacts, ORG, now=clock), catalog, runner, clock)


def definition(**changes: Any) -> Any:
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    raw.update(changes)
    return parse_definition(raw)


def small(**changes: Any) -> Any:
    """Below the brand's approval limit (1,000 sends): 500 at 5 fen."""
    budget = {"amount_minor": 2_500, "currency": "CNY", "cost_per_message_minor": {"sms": 5}}
    return definition(budget=budget, **changes)


def test_versions_are_kept_and_a_run_keeps_the_version_it_started_with(world: World) -> None:
    # Given a campaign defined twice
    first = world.service.define(small(), MARKETER)
    second = world.service.define(small(name="Winter cake SMS, shorter copy"), MARKETER)
    assert (first.state.status, first.version.version, second.version.version) == ("draft", 1, 2)
    # When version 1 is started by hand
    run = world.service.start("demo-brand", "winter_cake_sms", MARKETER, version=1).run
    # Then the run names its version, its execution is running, and version 1 is still there as defined
    assert run.version == 1 and run.run_id == "winter_cake_sms-v1-20261206T120000Z"
    assert world.runner.status(run.run_id) == "RUNNING"
    assert world.service.get("demo-brand", "winter_cake_sms", 1).version.definition.name == "Winter cake SMS"
    assert world.service.get("demo-brand", "winter_cake_sms").version.version == 2
    with pytest.raises(ConflictError, match="one start per second"):
        world.service.start("demo-brand", "winter_cake_sms", MARKETER, version=1)
    with pytest.raises(NotFoundError, match="no version 3"):
        world.service.get("demo-brand", "winter_cake_sms", 3)


def test_a_version_above_the_brands_limits_runs_only_once_another_client_approved_it(world: World) -> None:
    # Given the sample (4,000 planned sends; the brand's limit is 1,000)
    view = world.service.define(definition(), MARKETER)
    assert view.needs_approval and view.planned_sends == 4_000
    # Then it cannot start, its definer cannot approve it, another client can, once
    with pytest.raises(ConflictError, match="needs an approval"):
        world.service.start("demo-brand", "winter_cake_sms", MARKETER)
    with pytest.raises(ForbiddenError, match="another client"):
        world.service.approve("demo-brand", "winter_cake_sms", 1, MARKETER)
    approved = world.service.approve("demo-brand", "winter_cake_sms", 1, APPROVER)
    assert approved.version.approval is not None and approved.version.approval.by == "approver"
    assert not approved.needs_approval
    with pytest.raises(ConflictError, match="approved already"):
        world.service.approve("demo-brand", "winter_cake_sms", 1, APPROVER)
    assert world.service.start("demo-brand", "winter_cake_sms", MARKETER).run.outcome == "started"
    # And a new version needs its own approval
    world.service.define(definition(name="v2"), MARKETER)
    with pytest.raises(ConflictError, match="version 2 needs an approval"):
        world.service.start("demo-brand", "winter_cake_sms", MARKETER)


def test_a_store_or_dealer_scoped_key_cannot_reach_the_brands_campaigns() -> None:
    # a campaign selects from all of the brand's customers: a store's or a dealer's key must not reach them
    scopes = frozenset({"campaigns:write", "campaigns:read"})
    for place in (ScopeRef(brand_id="demo-brand", store_id="sh01"), ScopeRef(brand_id="demo-brand", dealer_id="d1")):
        with pytest.raises(ForbiddenError, match="limited to"):
            authorize_campaigns(ApiClient("till", scopes, place), ORG, "demo-brand", "campaigns:write")
    assert authorize_campaigns(MARKETER, ORG, "demo-brand", "campaigns:write") is MARKETER


def test_a_weekly_schedule_starts_each_occurrence_once_and_pause_skips_them(world: World) -> None:
    world.service.define(small(), MARKETER)
    scheduled = world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    assert scheduled.state.next_run_at == MONDAY_10_SHANGHAI
    assert scheduled.next_runs[:2] == [MONDAY_10_SHANGHAI, MONDAY_10_SHANGHAI + timedelta(days=7)]
    # When the tick fires a minute early, on time, and again on time
    assert world.service.fire_due(MONDAY_10_SHANGHAI - timedelta(minutes=1)) == []
    (fired,) = world.service.fire_due(MONDAY_10_SHANGHAI)
    assert world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(minutes=1)) == []
    # Then one run started, named by its occurrence, and the campaign moved on a week
    assert (fired.run_id, fired.trigger, fired.outcome) == ("winter_cake_sms-v1-20261207T0200Z", "schedule", "started")
    assert world.runner.status(fired.run_id) == "RUNNING"
    state = world.service.get("demo-brand", "winter_cake_sms").state
    assert state.next_run_at == MONDAY_10_SHANGHAI + timedelta(days=7)
    # When paused over the next Monday, then resumed
    world.service.pause("demo-brand", "winter_cake_sms", MARKETER)
    assert world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(days=7)) == []
    world.clock.at = MONDAY_10_SHANGHAI + timedelta(days=8)
    resumed = world.service.resume("demo-brand", "winter_cake_sms", MARKETER)
    # Then the paused Monday never ran and the schedule resumes from the next one
    assert resumed.state.next_run_at == MONDAY_10_SHANGHAI + timedelta(days=14)
    assert [r.run.run_id for r in world.service.runs("demo-brand", "winter_cake_sms").runs] == [fired.run_id]
    with pytest.raises(ConflictError, match="only a paused campaign resumes"):
        world.service.resume("demo-brand", "winter_cake_sms", MARKETER)


def test_the_stop_switch_and_missing_approval_skip_occurrences_with_their_reason(world: World) -> None:
    world.service.define(definition(), MARKETER)  # needs an approval
    world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    (unapproved,) = world.service.fire_due(MONDAY_10_SHANGHAI)
    assert unapproved.outcome == "skipped" and "needs an approval" in (unapproved.reason or "")
    world.service.approve("demo-brand", "winter_cake_sms", 1, APPROVER)
    # When the brand's stop switch is on over the next Monday
    world.service.set_switch(SwitchRequest(brand_id="demo-brand", stopped=True, reason="price error"), APPROVER)
    (switched,) = world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(days=7))
    assert switched.outcome == "skipped" and "stop switch is on (by approver: price error)" in (switched.reason or "")
    with pytest.raises(ConflictError, match="stop switch"):
        world.service.start("demo-brand", "winter_cake_sms", MARKETER)
    assert world.service.list_brand("demo-brand").switch.stopped
    # Then, switched off, the following Monday runs; a tick that comes over an hour late skips its occurrence
    world.service.set_switch(SwitchRequest(brand_id="demo-brand", stopped=False), APPROVER)
    (ran,) = world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(days=14))
    (late,) = world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(days=21, hours=2))
    assert (ran.outcome, late.outcome) == ("started", "skipped") and "late" in (late.reason or "")
    runs = world.service.runs("demo-brand", "winter_cake_sms").runs
    assert [(r.run.outcome, r.status) for r in runs] == [
        ("skipped", None),
        ("started", "RUNNING"),
        ("skipped", None),
        ("skipped", None),
    ]


def test_a_new_version_of_a_scheduled_campaign_runs_from_its_next_occurrence(world: World) -> None:
    world.service.define(small(), MARKETER)
    world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    world.service.fire_due(MONDAY_10_SHANGHAI)
    world.clock.at = MONDAY_10_SHANGHAI + timedelta(minutes=5)
    # When, after Monday's run, version 2 moves the campaign to Tuesdays
    tuesdays = copy.deepcopy(yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))["schedule"])
    tuesdays["every"]["weekdays"] = ["tuesday"]
    view = world.service.define(small(schedule=tuesdays), MARKETER)
    # Then it stays scheduled, on version 2, from the next day (Tuesday 10:00 in Shanghai)
    assert (view.state.status, view.state.active_version) == ("scheduled", 2)
    assert view.state.next_run_at == MONDAY_10_SHANGHAI + timedelta(days=1)
    (fired,) = world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(days=1))
    assert fired.run_id == "winter_cake_sms-v2-20261208T0200Z"


def test_a_once_schedule_completes_and_stop_ends_runs_in_flight(world: World) -> None:
    world.service.define(small(schedule={"once": "2026-12-07T10:00"}), MARKETER)
    world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    (fired,) = world.service.fire_due(MONDAY_10_SHANGHAI)
    assert world.service.get("demo-brand", "winter_cake_sms").state.status == "completed"
    with pytest.raises(ConflictError, match="schedule has no occurrence after now"):
        world.clock.at = MONDAY_10_SHANGHAI + timedelta(hours=1)
        world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    # When stopped while its run is in flight
    stopped = world.service.stop("demo-brand", "winter_cake_sms", MARKETER)
    # Then the run's execution is stopped, and a stopped campaign neither starts nor stops again
    assert stopped.state.status == "stopped" and world.runner.status(fired.run_id) == "ABORTED"
    with pytest.raises(ConflictError, match="define a new version"):
        world.service.start("demo-brand", "winter_cake_sms", MARKETER)
    assert world.service.define(small(), MARKETER).state.status == "draft"


def test_a_change_based_on_a_stale_read_is_refused(world: World) -> None:
    world.service.define(small(), MARKETER)
    stale = world.catalog.state("demo-brand", "winter_cake_sms")
    assert stale is not None
    world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    paused = stale.model_copy(update={"status": "paused", "rev": stale.rev + 1})
    with pytest.raises(ConflictError, match="changed meanwhile"):
        world.catalog.put_state(paused, stale.rev, stale.next_run_at)
    # and a run id is recorded once whoever records it
    run = RunRecord(
        run_id="winter_cake_sms-v1-20261207T0200Z",
        brand_id="demo-brand",
        campaign_id="winter_cake_sms",
        version=1,
        trigger="schedule",
        at=MONDAY_10_SHANGHAI,
        by="schedule",
        outcome="started",
    )
    assert world.catalog.add_run(run) and not world.catalog.add_run(run)


def test_a_tick_that_recorded_an_occurrence_but_stopped_before_starting_it_is_finished_by_the_next(
    world: World,
) -> None:
    world.service.define(small(), MARKETER)
    world.service.activate("demo-brand", "winter_cake_sms", MARKETER)
    # Given the occurrence recorded as started by a tick that then stopped (nothing started, the state not moved)
    run_id = "winter_cake_sms-v1-20261207T0200Z"
    record = RunRecord(
        run_id=run_id,
        brand_id="demo-brand",
        campaign_id="winter_cake_sms",
        version=1,
        trigger="schedule",
        at=MONDAY_10_SHANGHAI,
        by="schedule",
        outcome="started",
    )
    assert world.catalog.add_run(record) and world.runner.status(run_id) is None
    # When the next tick comes / Then it starts that run (once) and moves the campaign on
    (fired,) = world.service.fire_due(MONDAY_10_SHANGHAI + timedelta(minutes=1))
    assert fired.run_id == run_id and world.runner.status(run_id) == "RUNNING"
    assert world.service.get("demo-brand", "winter_cake_sms").state.next_run_at == MONDAY_10_SHANGHAI + timedelta(
        days=7
    )


def test_a_dry_run_selects_prices_and_finds_caps_and_overlaps_without_sending(world: World) -> None:
    from cdp.campaigns.lifecycle import Selection
    from cdp.campaigns.service import plan_selection
    from cdp.channels.ledger import DynamoContactLedger
    from cdp.org import FrequencyCap
    from cdp.profile.models import ConsentState, ModelScore, Profile
    from tests.fakes.profiles import InMemoryProfiles

    # Given ten demo-brand customers who opted in to SMS (ranked by score), dry8 SMSed twice this week
    consent = {"sms": ConsentState(granted=True, changed_at=SUNDAY, source="app")}
    people = [
        Profile(
            person_id=f"dry{i}",
            brand_id="demo-brand",
            created_at=SUNDAY,
            updated_at=SUNDAY,
            consent=consent,
            scores={"response": ModelScore(score=i / 10, model_version="v1", scored_at=SUNDAY)},
        )
        for i in range(10)
    ]
    ddb = world.catalog._db
    create_table(ddb, topology.LEDGER_TABLE)
    contacts = DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=ddb)
    caps = [FrequencyCap(channel="sms", max=2, per_days=7)]
    for at in (SUNDAY - timedelta(days=2), SUNDAY - timedelta(days=1)):
        assert contacts.reserve("demo-brand", "dry8", "sms", at, caps) is None
    org = OrgDirectory.model_validate(
        {"brands": {"demo-brand": {"group_id": "demo-group", "contact": {"caps": [c.model_dump() for c in caps]}}}}
    )
    service = CampaignService(
        world.catalog,
        world.runner,
        world.service.artifacts,
        org,
        now=world.clock,
        selection=Selection(InMemoryProfiles(people), None, contacts),
    )
    # and a weekly campaign (budget for 6 SMS, 20% holdout, an e-mail follow-up), plus another one scheduled
    budget = {"amount_minor": 30, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}}
    follow_up = {"channel": "email", "template": {"subject": "Cake", "body": "Cake"}, "to": "not_converted"}
    steps = [{"send": {"channel": "sms", "template": {"body": "Cake"}}}, {"wait": {"days": 3}}, {"send": follow_up}]
    service.define(definition(audience={}, budget=budget, steps=steps, holdout=0.2), MARKETER)
    other = definition(campaign_id="other_weekly", audience={}, budget=budget, steps=steps)
    service.define(other, MARKETER)
    service.activate("demo-brand", "other_weekly", MARKETER)
    # When run dry
    report = service.dry_run("demo-brand", "winter_cake_sms")
    # Then the budget cut takes the 6 best scored, the stable draw holds dry9 out, priced, nothing sent
    assert (report.eligible, report.selected, report.treatment + report.holdout) == (10, 6, 6)
    assert report.first_send_cost_minor == report.treatment * 5
    assert report.follow_up_cost_at_most_minor == report.treatment * 1
    # dry8 is treated, and the week's 2 SMS cap would stop their SMS today
    stored = service.get("demo-brand", "winter_cake_sms").version.definition
    plan = plan_selection(stored.to_request("winter_cake_sms-dry-run"), InMemoryProfiles(people), None)
    assert [m.person_id for m in plan.holdout] == ["dry9"] and "dry8" in {m.person_id for m in plan.treatment}
    assert (report.treatment, report.holdout, report.capped_today, report.unscored) == (5, 1, 1, 0)
    assert list(report.sends_by_day) == ["2026-12-07", "2026-12-14"]  # Mondays in Shanghai within 14 days
    assert [(o.campaign_id, o.days) for o in report.overlaps] == [("other_weekly", ["2026-12-07", "2026-12-14"])]
    assert world.service.runs("demo-brand", "winter_cake_sms").runs == []


class RecordedPlans:
    def __init__(self) -> None:
        self.released: list[tuple[str, str, list[str]]] = []

    def reserve(self, brand_id: str, run_id: str, offer_ids: Any, persons: int, now: datetime) -> int:
        raise AssertionError("selection reserves, not the lifecycle")

    def release(self, brand_id: str, run_id: str, offer_ids: Any, now: datetime) -> None:
        self.released.append((brand_id, run_id, list(offer_ids)))


def test_stopping_a_run_in_flight_gives_its_offer_plans_back(world: World) -> None:
    # Given a campaign whose steps issue the catalog offer winter-cake-20, with a run in flight
    plans = RecordedPlans()
    service = CampaignService(world.catalog, world.runner, world.service.artifacts, ORG, now=world.clock, plans=plans)
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    for step in raw["steps"]:
        if "send" in step:
            step["send"]["offer"] = {"offer_id": "winter-cake-20"}
    raw |= {"schedule": {"once": "2026-12-07T10:00"}, "budget": small().budget.model_dump(mode="json")}
    service.define(parse_definition(raw), MARKETER)
    service.activate("demo-brand", "winter_cake_sms", MARKETER)
    (fired,) = service.fire_due(MONDAY_10_SHANGHAI)
    # When the campaign is stopped
    service.stop("demo-brand", "winter_cake_sms", MARKETER)
    # Then the run's execution is stopped and what its plan has left goes back (its summary will never run)
    assert world.runner.status(fired.run_id) == "ABORTED"
    assert plans.released == [("demo-brand", fired.run_id, ["winter-cake-20"])]
