"""Date, weather and location triggers end to end on the local runtime: customers identified through the events API,
journeys defined and made live through the campaign API, external signals posted to `POST /v1/signals` (the bus ->
the journey queue), the schedule's tick running the sweeps, and the messages delivered by the send function."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cdp import topology
from cdp.shared.time import utc_now
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import PostEvents

BRAND = "demo-brand"
CITY = "Mohe"  # a city no other e2e customer lives in: the sweep finds these customers only


def _call(runtime: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json", "x-api-key": key or runtime.admin_key}
    response = runtime.http(method, path, json.dumps(body).encode() if body is not None else b"", headers)
    return response.status, json.loads(response.body or b"null")


def _journey(runtime: LocalRuntime, campaign_id: str, trigger: dict[str, Any], body: str) -> None:
    definition = {
        "campaign_id": campaign_id,
        "brand_id": BRAND,
        "name": campaign_id,
        "trigger": trigger,
        "steps": [{"send": {"channel": "sms", "template": {"body": body}}}],
        "budget": {"amount_minor": 1000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
        "holdout": 0.0,
    }
    assert _call(runtime, "POST", "/v1/campaigns", definition)[0] == 201
    assert _call(runtime, "POST", f"/v1/campaigns/{campaign_id}/activate?brand_id={BRAND}")[0] == 200


def _sent(runtime: LocalRuntime, campaign_id: str) -> list[str]:
    s3 = runtime.client("s3")
    listed = s3.list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=topology.OUTBOX_PREFIX)
    out = []
    for obj in listed.get("Contents", []):
        if f"/{campaign_id}-v1-journey/" in obj["Key"]:
            body = s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=obj["Key"])["Body"].read()
            out.append(json.loads(body)["message"]["person_id"])
    return sorted(out)


def _customer(phone: str, n: int, **traits: Any) -> list[dict[str, Any]]:
    base = {
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": utc_now().isoformat(),
        "identifiers": [{"type": "phone", "value": phone}],
    }
    return [
        {**base, "event_id": f"signals-e2e-id-{n}", "event_type": "identify", "properties": traits},
        {
            **base,
            "event_id": f"signals-e2e-consent-{n}",
            "event_type": "consent_changed",
            "properties": {"channel": "all", "granted": True, "purpose": "marketing"},
        },
    ]


def test_a_cold_snap_a_birthday_and_a_store_visit_enter_their_journeys(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    soon = utc_now().astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=3)  # demo-brand's zone
    _journey(runtime, "e2e_cold_snap", {"weather": {"city": CITY, "below_c": -20}}, "Cold snap: hot soup 2 for 1")
    _journey(runtime, "e2e_birthday", {"date": {"of": "birthday", "days_before": 7, "at": "00:00"}}, "Happy birthday")
    _journey(runtime, "e2e_store_visit", {"location": {"place": "store", "store_ids": ["sh01"]}}, "Welcome in!")
    try:
        phones = ["13766600001", "13766600002", "13766600003"]
        events = _customer(phones[0], 1, city=CITY) + _customer(
            phones[1], 2, city=CITY, birthday=soon.replace(1990).isoformat()
        )
        events += _customer(phones[2], 3, city="Shanghai")
        response, report = post_events(events)
        assert response.status == 202 and report.dead_lettered == 0
        persons = [
            _call(runtime, "GET", f"/v1/profiles/by-identifier/phone/{p}?brand_id={BRAND}")[1]["person_id"]
            for p in phones
        ]
        now = utc_now()

        # When the weather feed posts a reading above the threshold, then one below it
        for celsius, minutes in ((-12.0, -30), (-24.5, 0)):
            reading = {"kind": "weather", "city": CITY, "temperature_c": celsius, "observed_at": now.isoformat()}
            reading["observed_at"] = (now + timedelta(minutes=minutes)).isoformat()
            status, answer = _call(runtime, "POST", f"/v1/signals?brand_id={BRAND}", reading)
            assert (status, answer) == (202, {"kind": "weather", "person_id": None})
        runtime.drain()
        # And the schedule's tick runs the sweeps (the cold snap's, and today's birthday sweep)
        fired = runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, now + timedelta(minutes=31))
        assert fired.result["sweeps"]["entered"] >= 3 and fired.result["sweeps"]["closed"] >= 2, fired.result["sweeps"]
        runtime.drain()
        # Then the two customers of that city got the cold-snap message, the birthday customer hers
        assert _sent(runtime, "e2e_cold_snap") == sorted(persons[:2])
        assert persons[1] in _sent(runtime, "e2e_birthday") and persons[0] not in _sent(runtime, "e2e_birthday")

        # When the third customer's phone reports entering store sh01 (an unknown phone is a 404)
        visit = {"kind": "location", "identifier": {"type": "phone", "value": phones[2]}, "place": "store"}
        visit.update({"store_id": "sh01", "at": now.isoformat()})
        status, answer = _call(runtime, "POST", f"/v1/signals?brand_id={BRAND}", visit)
        assert (status, answer) == (202, {"kind": "location", "person_id": persons[2]})
        runtime.drain()
        assert _sent(runtime, "e2e_store_visit") == [persons[2]]
        unknown = {**visit, "identifier": {"type": "phone", "value": "13766609999"}}
        assert _call(runtime, "POST", f"/v1/signals?brand_id={BRAND}", unknown)[0] == 404
    finally:
        for campaign_id in ("e2e_cold_snap", "e2e_birthday", "e2e_store_visit"):
            _call(runtime, "POST", f"/v1/campaigns/{campaign_id}/stop?brand_id={BRAND}")


def test_a_bad_signal_is_a_4xx_naming_the_field_and_scope_is_enforced(runtime: LocalRuntime) -> None:
    path = f"/v1/signals?brand_id={BRAND}"
    at = utc_now().isoformat()
    cases = [
        ({"kind": "weather", "city": CITY, "temperature_c": 400, "observed_at": at}, "temperature_c"),
        ({"kind": "weather", "city": CITY, "temperature_c": 1, "observed_at": "0001-01-01T00:00:00+01:00"}, None),
        ({"kind": "rain", "city": CITY}, "kind"),
        ({"kind": "location", "person_id": "p-1", "place": "store", "at": at}, None),
        ({"kind": "location", "identifier": {"type": "fax", "value": "1"}, "place": "home", "at": at}, "identifier"),
        ({"kind": "weather", "city": CITY, "temperature_c": 1, "observed_at": "2099-01-01T00:00:00Z"}, "observed_at"),
    ]
    for body, field in cases:
        status, answer = _call(runtime, "POST", path, body)
        assert 400 <= status < 500, (body, status, answer)
        if field is not None:
            assert field in str(answer.get("field")), (body, answer)
    # A key without signals:write gets a 403; a key of another brand cannot post for this one
    assert _call(runtime, "POST", path, cases[0][0], key=runtime.api_key)[0] == 403
    weather = {"kind": "weather", "city": CITY, "temperature_c": 1, "observed_at": at}
    assert _call(runtime, "POST", path, weather, key="e2e-outlet-signals-key")[0] == 403
    assert _call(runtime, "POST", "/v1/signals?brand_id=demo-outlet", weather, key="e2e-outlet-signals-key")[0] == 202


def test_the_cli_posts_signals(runtime: LocalRuntime) -> None:
    from typer.testing import CliRunner

    from cdp_local.cli import app
    from cdp_local.http_server import LocalApiServer

    with LocalApiServer(runtime, port=0) as served:

        def cdp(*args: str) -> Any:
            return CliRunner().invoke(app, ["campaign", "signal", *args, "--url", served.url], catch_exceptions=False)

        weather = cdp("weather", "--city", CITY, "--celsius", "-3.5")
        assert weather.exit_code == 0 and "weather signal accepted" in weather.output, weather.output
        unknown = cdp("location", "--phone", "13766609998", "--store", "sh01")
        assert unknown.exit_code != 0 and "no person" in unknown.output, unknown.output
        wrong = cdp("rain")
        assert wrong.exit_code == 2 and "weather or location" in wrong.output
