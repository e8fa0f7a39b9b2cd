"""A journey's funnel per step and per A/B/n arm end to end on the local runtime: events posted to the API enter four
persons into a two-send journey with an arm of its own steps; the send function delivers (the outbox), a frequency
cap keeps one SMS back, quiet hours in London hold one until the tick releases it, receipts posted back move the
messages, an order converts one person; then `cdp campaign results --json` shows every number as counted by hand.

The brand's contact policy here (its own org config, so a runtime of its own): at most 1 SMS in 7 days, quiet hours
21:00-09:00 in each person's time zone. The clock is moved to fixed instants so the quiet hours fall the same way at
any hour the test runs: T0 is 02:00 UTC (10:00 in Shanghai, 02:00 or 03:00 in London)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cdp import topology
from cdp.campaigns.journeys import holdout_group
from cdp.campaigns.lifecycle import parse_definition
from cdp.channels.models import message_id_for
from cdp.org import ORG_CONFIG_ENV
from cdp_local.cli import app
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime.core import LocalRuntime

BRAND = "demo-brand"
CAMPAIGN = "e2e_funnel"
WARM_UP = "e2e_funnel_warm_up"
ORG_DEFAULT = Path(__file__).resolve().parents[3] / "layers" / "domain" / "cdp" / "org.default.json"
SMS_A = {"channel": "sms", "template": {"body": "Your cart is waiting (a)"}}
SMS_B = {"channel": "sms", "template": {"body": "Your cart is waiting (b)"}}
JOURNEY = {
    "campaign_id": CAMPAIGN,
    "brand_id": BRAND,
    "name": "Cart funnel",
    "trigger": {"event": "add_to_cart"},
    "exit_on": ["order_placed"],
    "steps": [  # steps[0..3]: arm a and the holdout
        {"send": SMS_A},
        {"wait": {"hours": 8}},
        {"send": {"channel": "inapp", "template": {"body": "Still thinking it over? (a)"}}},
        {"wait": {"days": 1}},  # an order within a day still converts
    ],
    "variants": [
        {"name": "a", "share": 0.5},
        {
            "name": "b",
            "share": 0.5,
            "steps": [  # variants[1].steps[0..3]
                {"send": SMS_B},
                {"wait": {"hours": 8}},
                {"send": {"channel": "inapp", "template": {"body": "Still thinking it over? (b)"}}},
                {"wait": {"days": 1}},
            ],
        },
    ],
    "budget": {"amount_minor": 1_000, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "inapp": 0}},
    "holdout": 0.3,
}
WARM_UP_JOURNEY = {  # one SMS on a page view: it takes up the person's SMS of the week
    "campaign_id": WARM_UP,
    "brand_id": BRAND,
    "name": "Browse",
    "trigger": {"event": "page_view"},
    "steps": [{"send": {"channel": "sms", "template": {"body": "Welcome back"}}}],
    "budget": {"amount_minor": 1_000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
    "holdout": 0.0,
}


@dataclass(frozen=True)
class Person:
    phone: str
    person_id: str


class Scene:
    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.n = 0

    def api(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"content-type": "application/json", "x-api-key": self.runtime.admin_key}
        raw = json.dumps(body).encode() if body is not None else b""
        response = self.runtime.http(method, path, raw, headers)
        assert 200 <= response.status < 300, (response.status, response.body)
        return json.loads(response.body)

    def post(self, *events: dict[str, Any]) -> None:
        headers = {"content-type": "application/json", "x-api-key": self.runtime.api_key}
        response = self.runtime.http("POST", "/v1/events", json.dumps({"batch": list(events)}).encode(), headers)
        assert response.status == 202, response.body
        assert self.runtime.drain().dead_lettered == 0

    def event(self, kind: str, phone: str, **properties: Any) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"funnel-{kind}-{phone}-{self.n}",
            "event_type": kind,
            "source": "app",
            "brand_id": BRAND,
            "occurred_at": self.runtime.clock().isoformat(),
            "identifiers": [{"type": "phone", "value": phone}],
            "properties": properties,
        }

    def tick(self, at: datetime) -> dict[str, Any]:
        fired = self.runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, at)
        self.runtime.drain()
        return fired.result or {}

    def outbox(self, campaign: str) -> list[dict[str, Any]]:
        s3 = self.runtime.client("s3")
        listed = s3.list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=topology.OUTBOX_PREFIX)
        keys = [o["Key"] for o in listed.get("Contents", []) if f"/{campaign}-v1-journey/" in o["Key"]]
        read = s3.get_object
        return [json.loads(read(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=k)["Body"].read())["message"] for k in keys]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    org = json.loads(ORG_DEFAULT.read_text(encoding="utf-8"))
    org["brands"][BRAND]["contact"] = {
        "caps": [{"channel": "sms", "max": 1, "per_days": 7}],
        "quiet_hours": {"start": "21:00", "end": "09:00"},
    }
    path = tmp_path_factory.mktemp("org") / "org.json"
    path.write_text(json.dumps(org), encoding="utf-8")
    with LocalRuntime(state_machines=(), env_overrides={ORG_CONFIG_ENV: str(path)}) as rt:
        yield rt


def cast(scene: Scene) -> dict[str, Person]:
    """Customers who opted in to every channel, and the roles their stable draws give them: arm a, two of arm b
    (one of them in London) and one held out."""
    phones = [f"1376610{n:04d}" for n in range(16)]
    scene.post(*(scene.event("consent_changed", p, channel="all", granted=True, purpose="marketing") for p in phones))
    definition = parse_definition(JOURNEY)
    by_role: dict[str, list[Person]] = {"a": [], "b": [], "holdout": []}
    for phone in phones:
        person = Person(
            phone, scene.api("GET", f"/v1/profiles/by-identifier/phone/{phone}?brand_id={BRAND}")["person_id"]
        )
        group = holdout_group(CAMPAIGN, person.person_id, definition.holdout)
        by_role["holdout" if group == "holdout" else str(definition.variant_for(person.person_id))].append(person)
    return {"A": by_role["a"][0], "B": by_role["b"][0], "C": by_role["b"][1], "H": by_role["holdout"][0]}


def test_a_journeys_funnel_per_step_and_arm_equals_the_hand_count(runtime: LocalRuntime) -> None:
    scene = Scene(runtime)
    cast_ = cast(scene)
    a, b, c, h = (cast_[k] for k in "ABCH")
    scene.post(scene.event("identify", c.phone, timezone="Europe/London"))
    for definition in (WARM_UP_JOURNEY, JOURNEY):
        scene.api("POST", "/v1/campaigns", definition)
        scene.api("POST", f"/v1/campaigns/{definition['campaign_id']}/activate?brand_id={BRAND}")
    t0 = (runtime.clock() + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)

    # Given B had this week's SMS already: a page view at 09:30 in Shanghai sent the warm-up journey's
    scene.tick(t0 - timedelta(minutes=30))
    scene.post(scene.event("page_view", b.phone, url="https://shop.example/cakes"))
    assert [m["person_id"] for m in scene.outbox(WARM_UP)] == [b.person_id]

    # When all four add to their carts at 10:00 in Shanghai (02:00 or 03:00 in London)
    scene.tick(t0)
    scene.post(
        *(
            scene.event("add_to_cart", p.phone, sku="CAKE-9", quantity=1, unit_price_minor=8800, currency="CNY")
            for p in (a, b, c, h)
        )
    )
    # Then A got arm a's SMS; B's was kept back by the cap; C's is held for the quiet hours; H got nothing
    assert [(m["person_id"], m["body"]) for m in scene.outbox(CAMPAIGN)] == [(a.person_id, SMS_A["template"]["body"])]
    assert scene.api("GET", f"/v1/campaigns/{CAMPAIGN}/journey?brand_id={BRAND}")["messages"] == {
        "sent": 1,
        "suppressed_frequency_cap": 1,
        "deferred_quiet_hours": 1,
    }
    held = scene.api("GET", f"/v1/campaigns/{CAMPAIGN}/results?brand_id={BRAND}")["journey"]["steps"][4]
    assert (held["step"], held["reached"], held["sent"], held["deferred"]) == ("variants[1].steps[0]", 2, 0, 1)
    # When the tick after 09:00 in London releases C's SMS, which leaves then
    assert scene.tick(t0 + timedelta(hours=7, minutes=5))["released_after_quiet_hours"] == 1
    assert sorted(m["person_id"] for m in scene.outbox(CAMPAIGN)) == sorted([a.person_id, c.person_id])
    # and receipts come back: A's SMS delivered, C's clicked
    s0 = "e1-s0"  # each person's first step on the main path (arm b's own, for C)
    scene.post(
        scene.event("message_delivered", a.phone, message_id=message_id_for(CAMPAIGN, s0, a.person_id), channel="sms"),
        scene.event(
            "message_clicked",
            c.phone,
            message_id=message_id_for(CAMPAIGN, s0, c.person_id),
            channel="sms",
            url="https://shop.example/cart",
        ),
    )
    # When the 8 hours are up (18:01 in Shanghai, 10:01 or 11:01 in London): the in-app step for the three treated
    assert scene.tick(t0 + timedelta(hours=8, minutes=1))["journey_steps"] == 4
    assert scene.api("GET", f"/v1/campaigns/{CAMPAIGN}/journey?brand_id={BRAND}")["messages"]["sent"] == 5  # inboxes
    # and B reads hers; then C orders within the day (converted)
    s2 = message_id_for(CAMPAIGN, "e1-s2", b.person_id)
    scene.post(scene.event("message_opened", b.phone, message_id=s2, channel="inapp"))
    scene.post(
        scene.event(
            "order_placed",
            c.phone,
            order_id="FUNNEL-C-1",
            lines=[{"sku": "CAKE-9", "quantity": 1, "unit_price_minor": 8800}],
            total_minor=8800,
            currency="CNY",
        )
    )

    with LocalApiServer(runtime, port=0) as server:
        found = CliRunner().invoke(app, ["campaign", "results", CAMPAIGN, "--json", "--url", server.url])
        printed = CliRunner().invoke(app, ["campaign", "results", CAMPAIGN, "--url", server.url])
    assert found.exit_code == 0, found.output
    assert printed.exit_code == 0 and "funnel per step" in printed.output and "arm b" in printed.output
    journey = json.loads(found.output)["journey"]
    assert journey["entered"] == {"treatment": 3, "holdout": 1}
    # Every message once: 5 sent (A twice, C twice, B's in-app), B's SMS kept back, C's no longer held
    assert journey["messages"] == {"sent": 5, "suppressed_frequency_cap": 1, "deferred_quiet_hours": 0}
    assert journey["spent_minor"] == 3 * 5  # the three SMS ordered (B's counted when ordered, then kept back)

    def counts(step: dict[str, Any]) -> tuple[Any, ...]:
        keys = ("step", "kind", "channel", "reached", "reached_holdout", "sent", "suppressed", "deferred", "failed")
        return (*(step[k] for k in keys), step["receipts"], step["delivered"], step["opened"], step["clicked"])

    cap = {"suppressed_frequency_cap": 1}
    assert [counts(s) for s in journey["steps"]] == [
        # A reached it (H beside, sent nothing); A's SMS delivered
        ("steps[0]", "send", "sms", 1, 1, 1, {}, 0, 0, {"delivered": 1}, 1, 0, 0),
        ("steps[1]", "wait", None, 1, 1, 0, {}, 0, 0, {}, 0, 0, 0),
        ("steps[2]", "send", "inapp", 1, 1, 1, {}, 0, 0, {"sent": 1}, 0, 0, 0),
        ("steps[3]", "wait", None, 1, 1, 0, {}, 0, 0, {}, 0, 0, 0),
        # B and C reached arm b's SMS: B's kept back by the cap, C's held then sent (once) and clicked
        ("variants[1].steps[0]", "send", "sms", 2, 0, 1, cap, 0, 0, {"clicked": 1}, 1, 1, 1),
        ("variants[1].steps[1]", "wait", None, 2, 0, 0, {}, 0, 0, {}, 0, 0, 0),
        # both got the in-app message; B opened hers (an open proves the delivery)
        ("variants[1].steps[2]", "send", "inapp", 2, 0, 2, {}, 0, 0, {"sent": 1, "opened": 1}, 1, 1, 0),
        ("variants[1].steps[3]", "wait", None, 2, 0, 0, {}, 0, 0, {}, 0, 0, 0),
    ]  # fmt: skip
    # Each arm: its own steps, its persons' counts alone (no holdout column)
    arms = journey["variant_steps"]
    assert [counts(s)[:6] for s in arms["a"]] == [
        ("steps[0]", "send", "sms", 1, None, 1),
        ("steps[1]", "wait", None, 1, None, 0),
        ("steps[2]", "send", "inapp", 1, None, 1),
        ("steps[3]", "wait", None, 1, None, 0),
    ]
    everyones = [counts(s) for s in journey["steps"][4:]]  # arm b's steps have no holdout: the same counts
    assert [counts(s) for s in arms["b"]] == [(*row[:4], None, *row[5:]) for row in everyones]
    # and its conversion against the holdout: arm b 1 of 2 (Wilson 95%: 0.0945 to 0.9055), arm a 0 of 1, H 0 of 1
    # (0 to 0.7935): too few persons to conclude anything
    b_arm, a_arm = journey["variants"]["b"], journey["variants"]["a"]
    assert (b_arm["treatment"]["converted"], b_arm["treatment"]["size"]) == (1, 2)
    assert (b_arm["treatment"]["low"], b_arm["treatment"]["high"]) == pytest.approx((0.0945, 0.9055), abs=5e-5)
    assert (a_arm["treatment"]["converted"], a_arm["treatment"]["size"]) == (0, 1)
    assert (b_arm["control"]["converted"], b_arm["control"]["size"], b_arm["control"]["high"]) == pytest.approx(
        (0, 1, 0.7935), abs=5e-5
    )
    assert not b_arm["conclusive"] and "too few persons" in b_arm["verdict"]
