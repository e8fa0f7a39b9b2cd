"""The in-app inbox on the local runtime: a campaign message sent on channel `inapp` lands in the person's inbox; the
brand's backend gets the person's token with its API key; the app lists the inbox with it, and reading the message
publishes its receipt, which moves it to `opened` in the 360 view and puts message_opened on the timeline; dismissing
hides it. The token is the inbox routes' only credential: a missing, tampered, expired or foreign one is a 401, and
another person's message id is a 404."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.channels import service
from cdp.channels.inbox import DynamoInbox, InboxChannel
from cdp.channels.inbox_tokens import InboxToken, mint_inbox_token
from cdp.channels.ledger import DynamoSendLedger
from cdp.channels.messages import DynamoMessageLog
from cdp.channels.models import SendBatchRequest
from cdp.channels.service import send_batch
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.shared.time import utc_now
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import LOCAL_SOURCES

BRAND = "demo-brand"
LINK_SECRET = str(LOCAL_SOURCES["redirect"]["secret"])  # type: ignore[index]  # the local sources' tracked-link secret
TEMPLATE = {
    "subject": "Your cake is ready",
    "body": "{{ traits.name or 'Hello' }}, your order can be picked up at the counter.",
    "link": "demo-bakery://orders/latest",
}


def _json(response: Any) -> Any:
    return json.loads(response.body or b"null")


def customer(runtime: LocalRuntime, tag: str) -> str:
    """A member known by a phone and the brand's user id, who opted in to in-app messages: their person id."""
    now = utc_now().isoformat()
    base = {"schema_version": "1", "brand_id": BRAND, "source": "app", "occurred_at": now}
    ident = [{"type": "phone", "value": f"139{tag}"}, {"type": "user_id", "value": f"u-{tag}"}]
    events = [
        {**base, "event_id": f"inbox-id-{tag}", "event_type": "identify", "identifiers": ident,
         "properties": {"name": "Xiao Wang"}},
        {**base, "event_id": f"inbox-consent-{tag}", "event_type": "consent_changed", "identifiers": ident,
         "properties": {"channel": "inapp", "granted": True, "purpose": "marketing"}},
    ]  # fmt: skip
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers).status == 202
    runtime.drain()
    found = runtime.http("GET", f"/v1/profiles/by-identifier/user_id/u-{tag}?brand_id={BRAND}", b"", _admin(runtime))
    assert found.status == 200, found.body
    return str(_json(found)["person_id"])


def _admin(runtime: LocalRuntime) -> dict[str, str]:
    return {"content-type": "application/json", "x-api-key": runtime.admin_key}


@pytest.fixture
def inapp_wired(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The send service finds an in-app message's address (the person id itself) until channels/service.py says so."""
    if "inapp" not in service.ADDRESS_TYPES:
        monkeypatch.setitem(service.ADDRESS_TYPES, "inapp", None)  # type: ignore[index]  # a dict behind the Mapping
    yield


def send_inapp(runtime: LocalRuntime, campaign: str, person_ids: list[str]) -> dict[str, Any]:
    """A campaign step on channel inapp, sent by the send service through the inbox channel on the runtime's tables
    (the send function routes inapp once channels/routing.py wires it: see the test `..._through_the_send_function`)."""
    db = runtime.client("dynamodb")
    profiles = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=db)
    request = SendBatchRequest.model_validate(
        {
            "campaign_id": campaign,
            "run_id": f"{campaign}-r1",
            "brand_id": BRAND,
            "step": "touch1",
            "channel": "inapp",
            "template": TEMPLATE,
            "person_ids": person_ids,
        }
    )
    result = send_batch(
        request,
        profiles,
        profiles,
        DynamoSendLedger(topology.LEDGER_TABLE.local_name, client=db),
        {"inapp": InboxChannel(DynamoInbox(topology.LEDGER_TABLE.local_name, client=db))},
        now=utc_now(),
        log=DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=db),
    )
    return result.model_dump(mode="json")


def issue(runtime: LocalRuntime, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"content-type": "application/json", **({"x-api-key": key} if key else {})}
    return runtime.http("POST", "/v1/inbox/tokens", json.dumps(body).encode(), headers)


def token_for(runtime: LocalRuntime, body: dict[str, Any]) -> str:
    response = issue(runtime, {"brand_id": BRAND, **body}, runtime.admin_key)
    assert response.status == 201, response.body
    return str(_json(response)["token"])


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def inbox(runtime: LocalRuntime, token: str) -> Any:
    response = runtime.http("GET", "/v1/inbox", b"", bearer(token))
    assert response.status == 200, response.body
    return _json(response)


def mark(runtime: LocalRuntime, token: str, message_id: str, action: str) -> Any:
    return runtime.http("POST", f"/v1/inbox/{message_id}/{action}", b"", bearer(token))


def messages(runtime: LocalRuntime, person_id: str) -> list[dict[str, Any]]:
    response = runtime.http("GET", f"/v1/profiles/{person_id}", b"", _admin(runtime))
    assert response.status == 200, response.body
    found: list[dict[str, Any]] = _json(response)["messages"]
    return found


def opened_events(runtime: LocalRuntime, person_id: str) -> list[dict[str, Any]]:
    response = runtime.http("GET", f"/v1/profiles/{person_id}/timeline?limit=200", b"", _admin(runtime))
    assert response.status == 200, response.body
    return [e["event"] for e in _json(response)["entries"] if e["event"]["event_type"] == "message_opened"]


def test_an_inapp_message_read_in_the_app_shows_opened_and_a_dismissed_one_leaves_the_inbox(
    runtime: LocalRuntime, inapp_wired: None
) -> None:
    # Given a member who opted in to in-app messages, and a campaign step sent to them on channel inapp
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    person = customer(runtime, tag)
    campaign = f"inbox-{tag}"
    result = send_inapp(runtime, campaign, [person])
    assert (result["sent"], result["by_channel"]) == (1, {"inapp": 1})
    [sent] = messages(runtime, person)
    assert (sent["status"], sent["channel"], sent["provider"]) == ("sent", "inapp", "inapp")

    # When the brand's backend asks for the person's token by the phone it knows them by
    issued = issue(
        runtime, {"brand_id": BRAND, "identifier": {"type": "phone", "value": f"139{tag}"}}, runtime.admin_key
    )
    # Then it gets a Bearer token for that person, valid a day, never cached on the way
    assert issued.status == 201, issued.body
    answer = _json(issued)
    assert (answer["person_id"], answer["brand_id"], answer["token_type"]) == (person, BRAND, "Bearer")
    expires = datetime.fromisoformat(answer["expires_at"])
    assert timedelta(hours=23) < expires - utc_now() <= timedelta(hours=24)
    assert {k.lower(): v for k, v in issued.headers.items()}["cache-control"] == "no-store"
    token = answer["token"]

    # When the app lists the inbox with it
    listed = inbox(runtime, token)
    # Then the message is there, rendered, unread
    [entry] = listed["messages"]
    assert (listed["person_id"], listed["unread"], listed["total"]) == (person, 1, 1)
    assert entry["message_id"] == sent["message_id"]
    assert (entry["title"], entry["body"], entry["status"]) == (
        "Your cake is ready",
        "Xiao Wang, your order can be picked up at the counter.",
        "unread",
    )

    # When the app marks it read
    read = mark(runtime, token, entry["message_id"], "read")
    runtime.drain()
    # Then it is read in the inbox, opened in the 360 view, and the open is on the person's timeline
    assert read.status == 200, read.body
    assert _json(read)["status"] == "read"
    assert inbox(runtime, token)["unread"] == 0
    [opened] = messages(runtime, person)
    assert opened["status"] == "opened" and {"sent", "opened"} <= set(opened["status_times"])
    [event] = opened_events(runtime, person)
    assert (event["properties"]["message_id"], event["properties"]["channel"], event["source"]) == (
        entry["message_id"],
        "inapp",
        "app",
    )
    # And the run counts it opened
    log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=runtime.client("dynamodb"))
    assert log.counts(BRAND, campaign) == {f"{campaign}-r1": {"inapp": {"opened": 1}}}

    # When it is dismissed
    dismissed = mark(runtime, token, entry["message_id"], "dismiss")
    runtime.drain()
    # Then the inbox no longer lists it, and the open was counted once
    assert (dismissed.status, _json(dismissed)["status"]) == (200, "dismissed")
    assert inbox(runtime, token) | {"messages": None} == {
        "brand_id": BRAND,
        "person_id": person,
        "unread": 0,
        "total": 0,
        "messages": None,
    }
    assert len(opened_events(runtime, person)) == 1
    assert log.counts(BRAND, campaign) == {f"{campaign}-r1": {"inapp": {"opened": 1}}}


def test_a_dismissal_without_a_read_is_the_open(runtime: LocalRuntime, inapp_wired: None) -> None:
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    person = customer(runtime, tag)
    send_inapp(runtime, f"inbox-dismiss-{tag}", [person])
    token = token_for(runtime, {"person_id": person})
    [entry] = inbox(runtime, token)["messages"]
    assert mark(runtime, token, entry["message_id"], "dismiss").status == 200
    runtime.drain()
    assert inbox(runtime, token)["messages"] == []
    [message] = messages(runtime, person)
    assert message["status"] == "opened"


def test_the_token_is_the_inbox_routes_only_credential(runtime: LocalRuntime, inapp_wired: None) -> None:
    # Given two members of demo-brand with a message each, and a member of demo-outlet
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    mine, theirs = customer(runtime, tag), customer(runtime, f"{(int(tag) + 1) % 10**8:08d}")
    send_inapp(runtime, f"inbox-auth-{tag}", [mine, theirs])
    token, their_token = token_for(runtime, {"person_id": mine}), token_for(runtime, {"person_id": theirs})
    [their_message] = inbox(runtime, their_token)["messages"]
    expired = mint_inbox_token(InboxToken(BRAND, mine, utc_now() - timedelta(seconds=1)), LINK_SECRET)
    foreign = mint_inbox_token(InboxToken(BRAND, mine, utc_now() + timedelta(hours=1)), "another-secret")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    refused: list[dict[str, str]] = [
        {},  # no credential
        {"x-api-key": runtime.admin_key},  # an API key is not an inbox token, not even the administrator's
        bearer(runtime.admin_key),
        bearer(tampered),
        bearer(expired),
        bearer(foreign),
        {"authorization": f"Basic {token}"},
    ]
    # When the inbox routes are called with anything but the person's token / Then 401, and nothing is read
    for headers in refused:
        for method, path in (
            ("GET", "/v1/inbox"),
            ("POST", f"/v1/inbox/{their_message['message_id']}/read"),
            ("POST", f"/v1/inbox/{their_message['message_id']}/dismiss"),
        ):
            response = runtime.http(method, path, b"", headers)
            assert response.status == 401, (headers, path, response.body)
            assert _json(response)["error"] == "unauthorized"
    assert "expired" in _json(runtime.http("GET", "/v1/inbox", b"", bearer(expired)))["message"]
    # And with a genuine token, another person's message is a 404 (as one that does not exist), and stays unread
    for action in ("read", "dismiss"):
        assert mark(runtime, token, their_message["message_id"], action).status == 404
        assert mark(runtime, token, str(uuid.uuid4()), action).status == 404
    assert inbox(runtime, their_token)["unread"] == 1
    assert their_message["message_id"] not in [m["message_id"] for m in inbox(runtime, token)["messages"]]


def test_issuing_a_token_needs_inbox_issue_on_the_persons_brand(runtime: LocalRuntime) -> None:
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    person = customer(runtime, tag)
    body = {"brand_id": BRAND, "person_id": person}
    # no key, an unknown key: 401; keys without inbox:issue, or of another brand: 403
    assert issue(runtime, body).status == 401
    assert issue(runtime, body, "not-a-key").status == 401
    assert issue(runtime, body, "e2e-marketer-key").status == 403  # campaigns only
    assert issue(runtime, {**body, "brand_id": "demo-outlet"}, "e2e-outlet-operator-key").status == 403
    # the person must be the brand's, and the body well formed
    assert issue(runtime, {"brand_id": "demo-outlet", "person_id": person}, runtime.admin_key).status == 404
    assert issue(runtime, {"brand_id": BRAND, "person_id": "nobody"}, runtime.admin_key).status == 404
    bad = issue(runtime, {"brand_id": BRAND, "person_id": person, "valid_hours": 1000}, runtime.admin_key)
    assert bad.status == 422 and _json(bad)["errors"][0]["field"] == "valid_hours"
    assert issue(runtime, {"brand_id": BRAND}, runtime.admin_key).status == 422
    assert issue(runtime, body, runtime.admin_key).status == 201


def test_an_erased_person_leaves_no_inbox_and_their_token_reads_nothing(
    runtime: LocalRuntime, inapp_wired: None
) -> None:
    # Given a member with an in-app message in their inbox, and their token
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    person = customer(runtime, tag)
    send_inapp(runtime, f"inbox-erase-{tag}", [person])
    token = token_for(runtime, {"person_id": person})
    [entry] = inbox(runtime, token)["messages"]
    # When they are erased
    erased = runtime.http("DELETE", f"/v1/profiles/{person}", b"", _admin(runtime))
    runtime.drain()
    # Then the receipt lists their inbox's message, which is gone from the ledger table, and the token reads nothing
    assert erased.status == 200, erased.body
    inbox_items = [r for r in _json(erased)["ledger_records"] if r.startswith(f"INBOX#{BRAND}#{person}/")]
    assert inbox_items == [f"INBOX#{BRAND}#{person}/MSG#{entry['message_id']}"]
    found = runtime.client("dynamodb").query(
        TableName=topology.LEDGER_TABLE.local_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"INBOX#{BRAND}#{person}"}},
    )
    assert found["Items"] == []
    assert runtime.http("GET", "/v1/inbox", b"", bearer(token)).status == 404


def test_an_inapp_message_sent_through_the_send_function_lands_in_the_inbox(runtime: LocalRuntime) -> None:
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    person = customer(runtime, tag)
    request = {
        "campaign_id": f"inbox-send-{tag}",
        "run_id": f"inbox-send-{tag}-r1",
        "brand_id": BRAND,
        "step": "touch1",
        "channel": "inapp",
        "template": TEMPLATE,
        "person_ids": [person],
    }
    assert runtime.invoke(topology.SEND.key, request)["by_channel"] == {"inapp": 1}
    token = token_for(runtime, {"person_id": person})
    [entry] = inbox(runtime, token)["messages"]
    assert (entry["title"], entry["link"]) == ("Your cake is ready", "demo-bakery://orders/latest")
    assert mark(runtime, token, entry["message_id"], "read").status == 200
    runtime.drain()
    [message] = messages(runtime, person)
    assert (message["status"], message["provider"]) == ("opened", "inapp")
