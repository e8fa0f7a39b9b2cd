"""The preference centre on the local runtime: a marketing e-mail carries its preference link; the person opens it
(a page, no key), an e-mail client posts its one-click unsubscribe to it, and the person's e-mail consent is withdrawn
(the send path honours it from then on), the message shows `unsubscribed` in the 360 view and the change is on the
timeline; saving the form gives consent back. Hostile tokens are in tests/e2e/test_hostile_inputs.py."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from cdp import topology
from cdp.channels.ledger import DynamoSendLedger
from cdp.channels.messages import DynamoMessageLog
from cdp.channels.models import SendBatchRequest
from cdp.channels.service import LinkTracking, send_batch
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.shared.time import utc_now
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import LOCAL_SOURCES
from tests.fakes.channels import RecordingChannel

BRAND = "demo-brand"
BASE_URL = "http://127.0.0.1:8787"
LINK_SECRET = str(LOCAL_SOURCES["redirect"]["secret"])  # type: ignore[index]  # the local sources' tracked-link secret


def _json(response: Any) -> Any:
    return json.loads(response.body or b"null")


def _admin(runtime: LocalRuntime) -> dict[str, str]:
    return {"content-type": "application/json", "x-api-key": runtime.admin_key}


def customer(runtime: LocalRuntime, tag: str) -> str:
    now = utc_now().isoformat()
    base = {"schema_version": "1", "brand_id": BRAND, "source": "app", "occurred_at": now}
    ident = [{"type": "email", "value": f"prefs-{tag}@example.cn"}, {"type": "user_id", "value": f"u-{tag}"}]
    events = [
        {**base, "event_id": f"prefs-id-{tag}", "event_type": "identify", "identifiers": ident,
         "properties": {"name": "Li Na"}},
        {**base, "event_id": f"prefs-consent-{tag}", "event_type": "consent_changed", "identifiers": ident,
         "properties": {"channel": "email", "granted": True, "purpose": "marketing"}},
    ]  # fmt: skip
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers).status == 202
    runtime.drain()
    found = runtime.http("GET", f"/v1/profiles/by-identifier/user_id/u-{tag}?brand_id={BRAND}", b"", _admin(runtime))
    assert found.status == 200, found.body
    return str(_json(found)["person_id"])


def send_email(runtime: LocalRuntime, campaign: str, person: str) -> tuple[dict[str, Any], RecordingChannel]:
    db = runtime.client("dynamodb")
    profiles = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=db)
    channel = RecordingChannel(name="email")
    request = SendBatchRequest.model_validate(
        {
            "campaign_id": campaign,
            "run_id": f"{campaign}-r1",
            "brand_id": BRAND,
            "step": "touch1",
            "channel": "email",
            "template": {"subject": "Spring cakes", "body": "{{ traits.name or 'Hi' }}, the spring cakes are here."},
            "person_ids": [person],
        }
    )
    result = send_batch(
        request,
        profiles,
        profiles,
        DynamoSendLedger(topology.LEDGER_TABLE.local_name, client=db),
        {"email": channel},
        now=utc_now(),
        links=LinkTracking(BASE_URL, LINK_SECRET),
        log=DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=db),
    )
    return result.model_dump(mode="json"), channel


def view(runtime: LocalRuntime, person: str) -> dict[str, Any]:
    response = runtime.http("GET", f"/v1/profiles/{person}", b"", _admin(runtime))
    assert response.status == 200, response.body
    found: dict[str, Any] = _json(response)
    return found


def test_a_one_click_unsubscribe_withdraws_email_consent_and_the_form_gives_it_back(runtime: LocalRuntime) -> None:
    # Given a member who opted in to e-mail, and a marketing e-mail sent to them
    tag = f"{uuid.uuid4().int % 10**8:08d}"
    person = customer(runtime, tag)
    campaign = f"prefs-{tag}"
    result, channel = send_email(runtime, campaign, person)
    assert result["sent"] == 1
    [mail] = channel.sent
    # Then the e-mail names its preference link for one-click unsubscribe, and in its text
    assert mail.unsubscribe_url is not None and mail.unsubscribe_url.startswith(f"{BASE_URL}/v1/preferences/")
    assert mail.unsubscribe_url in mail.body
    path = urlsplit(mail.unsubscribe_url).path

    # When the person opens the link (no key: the token is the authority)
    page = runtime.http("GET", path, b"", {})
    # Then their choices are shown: e-mail offers ticked, never cached
    assert page.status == 200, page.body
    html = page.body.decode()
    assert 'name="marketing.email" aria-label="E-mail offers and news" checked' in html
    assert {k.lower(): v for k, v in page.headers.items()}["cache-control"] == "no-store"

    # When their mail client posts the one-click unsubscribe (RFC 8058)
    form = {"content-type": "application/x-www-form-urlencoded"}
    done = runtime.http("POST", path, b"List-Unsubscribe=One-Click", form)
    runtime.drain()
    # Then e-mail marketing consent is withdrawn, and the message shows unsubscribed
    assert done.status == 200, done.body
    profile = view(runtime, person)
    assert profile["consent"]["email"]["granted"] is False and profile["consent"]["email"]["source"] == "web"
    [message] = profile["messages"]
    assert (message["message_id"], message["status"]) == (mail.message_id, "unsubscribed")
    # And a new send to them is suppressed for want of consent
    again, _ = send_email(runtime, f"{campaign}-2", person)
    assert (again["sent"], again["suppressed_no_consent"]) == (0, 1)

    # When the person opens the link again and ticks e-mail offers back on
    notices = b"".join(f"&service.{c}=on".encode() for c in ("email", "sms", "wechat", "push", "inapp"))
    saved = runtime.http("POST", path, b"action=save&marketing.email=on" + notices, form)
    runtime.drain()
    # Then consent is given again (and the e-mail notices they left on are unchanged)
    assert saved.status == 200, saved.body
    consent = view(runtime, person)["consent"]
    assert consent["email"]["granted"] is True
    assert not any(key.startswith("service:") for key in consent)  # notices never refused: nothing published
