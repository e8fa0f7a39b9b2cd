"""Campaign definitions: field-path errors, schedules in the brand's time zone, and the run request they make."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdp.campaigns.definition import CampaignDefinition, Every, Schedule, run_id_for
from cdp.campaigns.lifecycle import CampaignInvalidError, parse_definition
from cdp.channels.models import SendBatchRequest
from cdp.channels.service import template_context
from cdp.channels.templates import TEMPLATE_NAMES
from cdp.org import BrandConfig, CampaignPolicy
from cdp.profile.models import Profile

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "campaigns"
SHANGHAI = BrandConfig(brand_id="b", group_id="g", timezone="Asia/Shanghai")
NEW_YORK = BrandConfig(brand_id="b", group_id="g", timezone="America/New_York", campaigns=CampaignPolicy())


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SAMPLES / "winter_cake_sms.yaml").read_text(encoding="utf-8"))
    return loaded


def errors(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(CampaignInvalidError) as caught:
        parse_definition(raw)
    return {e.field: e.message for e in caught.value.errors}


def test_the_sample_definition_is_valid_and_makes_the_state_machines_request() -> None:
    # Given the shipped sample; When parsed and turned into one run's request
    definition = parse_definition(sample())
    request = definition.to_request("winter_cake_sms-v1-20261207T0200Z")
    # Then the first send, the 3-day wait and the follow-up to non-converters are the state machine's touches
    assert (request.touch1.channel, request.touch2 and request.touch2.channel) == ("sms", "sms")
    assert (request.wait_seconds, request.second_touch, request.holdout_fraction) == (3 * 86_400, True, 0.1)
    assert request.conversion_window_seconds == 14 * 86_400 and request.audience.audience_id == "winter_cake_sms"
    # and the budget pays for 4,000 first sends (20,000 fen at 5 fen), below the 4,500 treatment of 5,000 recipients
    assert definition.planned_sends() == 4_000


def test_every_problem_is_reported_with_its_field_path() -> None:
    # Given a definition with five mistakes
    raw = sample()
    raw["campaign_id"] = "Winter Cake"
    raw["steps"][1]["wait"] = {"days": -1}
    raw["steps"][0]["send"]["channel"] = "fax"
    raw["schedule"]["every"]["at"] = "25:00"
    raw["budget"]["currency"] = "yuan"
    # Then each is named where it is
    found = errors(raw)
    assert set(found) == {
        "campaign_id",
        "steps[1].wait.days",
        "steps[0].send.channel",
        "schedule.every.at",
        "budget.currency",
    }, found


def test_steps_templates_and_costs_are_checked_where_they_are_written() -> None:
    raw = sample()
    raw["steps"][0]["send"]["template"]["body"] = "Hi {{ name }}"
    raw["steps"][2]["send"]["template"]["body"] = "{% if %}"
    raw["steps"][2]["send"]["channel"] = "email"
    raw["steps"][2]["send"]["template"]["subject"] = "Your code {{ offer.code }}"
    found = errors(raw)
    assert "unknown name(s) name" in found["steps[0].send.template.body"]
    assert "not a valid template" in found["steps[2].send.template.body"]
    assert "no cost for the email messages of steps[2]" in found["budget.cost_per_message_minor.email"]
    # and a sequence the state machine cannot run is refused, not run differently
    shapes = sample()
    shapes["steps"] = [shapes["steps"][1], shapes["steps"][0]]
    assert "wait -> send" in errors(shapes)["steps"]
    no_offer = sample()
    del no_offer["steps"][0]["send"]["offer"]
    assert errors(no_offer)["steps[0].send.template.body"] == "the template uses offer but the step has none"
    first_only_to_everyone = sample()
    first_only_to_everyone["steps"][2]["send"]["to"] = "everyone"
    assert "not_converted" in errors(first_only_to_everyone)["steps[2].send.to"]


def test_provider_templates_are_checked_where_they_are_written_and_carried_to_the_send() -> None:
    # Given an SMS step sent through a China provider's registered template, one of whose variables is misspelt
    raw = sample()
    sms = {"code": "SMS_468190012", "params": {"name": "{{ traits.nmae or 'Hi' }}", "code": "{{ offer.code }}"}}
    raw["steps"][0]["send"]["template"]["sms"] = sms
    assert errors(raw)["steps[0].send.template.sms.params.name"].startswith("traits has no nmae; a person's traits")
    raw["steps"][0]["send"]["template"]["sms"]["params"]["name"] = "{{ nmae }}"
    assert "unknown name(s) nmae" in errors(raw)["steps[0].send.template.sms.params.name"]
    # and a value some persons lack, printed without a default, is refused before anyone gets "None"
    raw["steps"][0]["send"]["template"]["sms"]["params"]["name"] = "{{ traits.name }}"
    assert "traits.name may be empty for some persons" in errors(raw)["steps[0].send.template.sms.params.name"]
    # and a WeChat step without its template message is refused where it is written
    wechat = sample()
    wechat["steps"][0]["send"]["channel"] = "wechat"
    wechat["budget"]["cost_per_message_minor"]["wechat"] = 0
    assert "template.wechat" in errors(wechat)["steps[0].send"]
    # When the provider template is right, it reaches the send step's request as written
    raw["steps"][0]["send"]["template"]["sms"]["params"]["name"] = "{{ traits.name or 'Hi' }}"
    request = parse_definition(raw).to_request("winter_cake_sms-v1-20261207T0200Z")
    assert request.touch1.template.sms is not None and request.touch1.template.sms.code == "SMS_468190012"


def test_a_template_may_use_exactly_what_the_send_step_gives_it() -> None:
    request = SendBatchRequest.model_validate(
        {
            "campaign_id": "c",
            "run_id": "c-v1-20261207T0200Z",
            "step": "touch1",
            "channel": "sms",
            "template": {"body": "x"},
            "offer": {"coupon_id": "k", "code": "K"},
            "batch_key": "campaigns/c-v1-20261207T0200Z/batches/0.json",
        }
    )
    now = datetime(2026, 12, 6, tzinfo=UTC)
    context = template_context(
        Profile(person_id="p", brand_id="b", created_at=now, updated_at=now), request, now.date()
    )
    assert set(context) == TEMPLATE_NAMES


def test_a_weekly_schedule_runs_at_local_time_in_the_brands_zone() -> None:
    schedule = Schedule(every=Every(weekdays=["monday", "thursday"], at=time(10, 0)), ends_on=date(2026, 12, 31))
    # Given Sunday 2026-12-06 12:00 UTC; Then the next run is Monday 10:00 in Shanghai = 02:00 UTC
    after = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert schedule.next_after(after, SHANGHAI) == datetime(2026, 12, 7, 2, tzinfo=UTC)
    # and after that, Thursday; an occurrence is never returned twice
    monday = datetime(2026, 12, 7, 2, tzinfo=UTC)
    assert schedule.next_after(monday, SHANGHAI) == datetime(2026, 12, 10, 2, tzinfo=UTC)
    # and nothing after ends_on
    assert schedule.next_after(datetime(2026, 12, 31, 3, tzinfo=UTC), SHANGHAI) is None


def test_a_schedule_follows_daylight_saving_in_its_own_zone() -> None:
    # Given every day at 09:00 New York time: 14:00 UTC in winter, 13:00 UTC after the March change
    schedule = Schedule(every=Every(at=time(9, 0)))
    assert schedule.next_after(datetime(2027, 3, 13, 15, tzinfo=UTC), NEW_YORK) == datetime(2027, 3, 14, 13, tzinfo=UTC)
    assert schedule.next_after(datetime(2027, 3, 12, 15, tzinfo=UTC), NEW_YORK) == datetime(2027, 3, 13, 14, tzinfo=UTC)
    # and a schedule's own zone wins over the brand's
    shanghai = Schedule(timezone="Asia/Shanghai", every=Every(at=time(9, 0)))
    assert shanghai.next_after(datetime(2027, 3, 13, 15, tzinfo=UTC), NEW_YORK) == datetime(2027, 3, 14, 1, tzinfo=UTC)


def test_a_one_off_schedule_runs_once_and_never_in_the_past() -> None:
    schedule = Schedule(once=datetime(2027, 3, 1, 10, 0), timezone="Asia/Shanghai")
    assert schedule.next_after(datetime(2027, 2, 1, tzinfo=UTC), SHANGHAI) == datetime(2027, 3, 1, 2, tzinfo=UTC)
    assert schedule.next_after(datetime(2027, 3, 1, 2, tzinfo=UTC), SHANGHAI) is None


@pytest.mark.parametrize(
    ("schedule", "field", "message"),
    [
        ({"once": "2027-03-01T10:00:00+08:00"}, "schedule.once", "without an offset"),
        ({"every": {"at": "10:00"}, "once": "2027-03-01T10:00"}, "schedule", "exactly one of"),
        ({"every": {"at": "10:00"}, "timezone": "Mars/Olympus"}, "schedule.timezone", "unknown time zone"),
        ({"every": {"at": "10:00"}, "starts_on": "2027-02-01", "ends_on": "2027-01-01"}, "schedule", "before"),
        ({"once": "0001-01-01T00:00"}, "schedule.once", "between"),
        ({"every": {"at": "10:00:30"}}, "schedule.every.at", "HH:MM"),
        ({"every": {"weekdays": ["someday"], "at": "10:00"}}, "schedule.every.weekdays[0]", "monday"),
    ],
)
def test_bad_schedules_are_refused_with_their_field(schedule: dict[str, Any], field: str, message: str) -> None:
    raw = sample()
    raw["schedule"] = schedule
    found = errors(raw)
    assert message in found[field], found


def test_run_ids_name_the_occurrence_so_a_repeated_firing_is_one_run() -> None:
    at = datetime(2026, 12, 7, 2, 0, 41, tzinfo=UTC)
    assert run_id_for("winter", 3, at, scheduled=True) == "winter-v3-20261207T0200Z"
    assert run_id_for("winter", 3, at, scheduled=False) == "winter-v3-20261207T020041Z"


def test_planned_sends_are_the_budget_cut_within_the_recipient_cap() -> None:
    raw = copy.deepcopy(sample())
    raw["max_recipients"] = 1_000
    assert CampaignDefinition.model_validate(raw).planned_sends() == 900  # 10% of the 1,000 are the holdout
    del raw["max_recipients"]
    assert CampaignDefinition.model_validate(raw).planned_sends() == 4_000


def test_a_journey_has_no_dry_run_of_a_scheduled_campaigns_kind() -> None:
    from cdp.campaigns.dry_run import dry_run
    from cdp.errors import ConflictError
    from tests.fakes.profiles import InMemoryProfiles

    raw = yaml.safe_load((SAMPLES / "abandoned_cart.yaml").read_text(encoding="utf-8"))
    with pytest.raises(ConflictError, match="a journey: its entries depend on events to come"):
        dry_run(parse_definition(raw), 1, SHANGHAI, InMemoryProfiles([]), None, None, [], datetime.now(UTC))


def test_the_tag_engines_announcements_read_as_journey_triggers() -> None:
    from cdp.campaigns.journeys import TagSignal

    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    entered = TagSignal(person_id="p", brand_id="b", at=at, audience_id="active_buyers")
    assert entered.trigger("audience.entered") == ("audience_entered", "active_buyers")
    key = entered.key("audience_entered", "active_buyers")
    assert key == "audience_entered:active_buyers:2026-12-06T12:00:00+00:00"
    dormant = TagSignal(person_id="p", brand_id="b", at=at, to="dormant")
    assert dormant.trigger("lifecycle.changed") == ("lifecycle", "dormant")
    assert TagSignal(person_id="p", brand_id="b", at=at, to=None).trigger("lifecycle.changed") is None  # removed


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sample_campaign_is_valid_and_names_its_steps_kinds(path: Path) -> None:
    definition = parse_definition(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert definition.campaign_id == path.stem
    kinds = {step.kind for _, step in definition.all_steps()}
    assert "send" in kinds


def test_the_cart_recovery_sample_uses_every_journey_step_but_split_goto_and_exit() -> None:
    definition = parse_definition(yaml.safe_load((SAMPLES / "cart_recovery.yaml").read_text(encoding="utf-8")))
    assert {step.kind for _, step in definition.all_steps()} == {"send", "wait", "wait_for", "branch"}
    assert definition.listens_to() == {"order_placed", "message_clicked", "message_opened"}
