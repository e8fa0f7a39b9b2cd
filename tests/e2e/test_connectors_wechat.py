"""WeChat through the local HTTP API: the official account's callback (URL check, XML pushes answered "success")
and the mini-program server's signed events end in one person with consent, deliveries and orders.

Each test uses its own OpenIDs, MsgIds and phone: the runtime's state is shared by every e2e test.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from cdp.connectors.wechat import OA_MAX_BODY, oa_signature
from cdp.ingest.security import sign_cdp
from cdp_local.runtime import HttpResponse, LocalRuntime

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "wechat"
OA, MP = "wx-local-oa", "wx-local-mp"  # the local apps (cdp_local.runtime.environment.LOCAL_SOURCES)
TOKEN, SECRET = "local-wechat-token", "local-mini-program-secret"
MP_TOKEN = "local-mini-program-token"  # the mini-program's message push (WeChat's own pushes to /v1/wechat/{app})
SAMPLE_OPENID = "oX7Pz5Hq2nTtY8kLmN3bVcR4sD1e"
_nonces = itertools.count(1000)


def oa_push(
    runtime: LocalRuntime,
    body: bytes,
    *,
    method: str = "POST",
    token: str = TOKEN,
    age_s: int = 0,
    app: str = OA,
    content_type: str = "text/xml",
    **extra: str,
) -> HttpResponse:
    timestamp, nonce = str(int(time.time()) - age_s), str(next(_nonces))
    query = {"signature": oa_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}
    return runtime.http(method, f"/v1/wechat/{app}?{urlencode(query)}", body, {"content-type": content_type})


def sample_push(name: str, openid: str, **replace: str) -> bytes:
    text = (SAMPLES / name).read_text().replace(SAMPLE_OPENID, openid)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


def mp_post(runtime: LocalRuntime, payload: dict[str, Any], secret: str = SECRET) -> HttpResponse:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "x-cdp-signature": sign_cdp(secret, body, int(time.time()))}
    return runtime.http("POST", f"/v1/wechat/{MP}/events", body, headers)


def person(runtime: LocalRuntime, kind: str, value: str, scope: str | None = None) -> dict[str, Any] | None:
    extra = f"&identifier_scope={scope}" if scope else ""
    path = f"/v1/profiles/by-identifier/{kind}/{quote(value)}?brand_id=demo-brand{extra}"
    response = runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key})
    return json.loads(response.body) if response.status == 200 else None


def follower(runtime: LocalRuntime, openid: str) -> dict[str, Any]:
    found = person(runtime, "wechat_openid", openid, OA)
    assert found is not None, f"no person holds {openid}"
    return found


def timeline(runtime: LocalRuntime, person_id: str) -> list[dict[str, Any]]:
    response = runtime.http("GET", f"/v1/profiles/{person_id}/timeline", b"", {"x-api-key": runtime.admin_key})
    assert response.status == 200, response.body
    entries: list[dict[str, Any]] = json.loads(response.body)["entries"]
    return entries


def assert_success(response: HttpResponse) -> None:
    assert response.status == 200, response.body
    assert response.body == b"success" and response.headers["content-type"].startswith("text/plain")


# ---- official account --------------------------------------------------------------------------------------------


def test_url_verification_echoes_echostr(runtime: LocalRuntime) -> None:
    # Given WeChat's GET check of the callback URL / When signed with the token / Then echostr comes back as text
    response = oa_push(runtime, b"", method="GET", echostr="5837926104938271650")
    assert response.status == 200 and response.body == b"5837926104938271650"
    assert response.headers["content-type"].startswith("text/plain")


def test_subscribe_then_unsubscribe_sets_and_withdraws_wechat_consent(runtime: LocalRuntime) -> None:
    # Given a scan-to-follow, then an unfollow a day later
    openid = "oE2eWxSubscribe000000000001"
    assert_success(oa_push(runtime, sample_push("subscribe.xml", openid)))
    runtime.drain()
    # Then a person holds the OpenID (scoped to the app) with WeChat consent granted
    profile = follower(runtime, openid)
    assert f"wechat_openid:{OA}:{openid}" in {i["key"] for i in profile["identifiers"]}
    assert profile["consent"]["wechat"]["granted"] is True and profile["consent"]["wechat"]["source"] == "wechat_oa"
    # When the unsubscribe arrives / Then the consent is withdrawn on the same person
    assert_success(oa_push(runtime, sample_push("unsubscribe.xml", openid)))
    runtime.drain()
    after = follower(runtime, openid)
    assert after["person_id"] == profile["person_id"]
    assert after["consent"]["wechat"]["granted"] is False


def test_template_delivery_counts_as_a_delivered_message(runtime: LocalRuntime) -> None:
    # Given a template message delivered and another blocked by the user
    openid = "oE2eWxTemplate0000000000001"
    delivered = sample_push("template_finished.xml", openid, **{"2894757127459356673": "7000000000000000001"})
    blocked = sample_push("template_failed.xml", openid, **{"2894757127459356674": "7000000000000000002"})
    assert_success(oa_push(runtime, delivered))
    assert_success(oa_push(runtime, blocked))
    runtime.drain()
    # Then only the successful one counts as delivered; both are on the timeline
    profile = follower(runtime, openid)
    assert profile["activity"]["messages_delivered"] == 1
    statuses = sorted(e["event"]["properties"]["status"] for e in timeline(runtime, profile["person_id"]))
    assert statuses == ["delivered", "failed"]


def test_a_resent_push_is_answered_success_and_counted_once(runtime: LocalRuntime) -> None:
    # Given WeChat re-sends a menu click (no reply within 5 s) and a user message
    openid = "oE2eWxRetry000000000000001"
    click = sample_push("menu_click.xml", openid)
    text = sample_push("text_message.xml", openid, **{"24563128973541248": "7000000000000000101"})
    for body in (click, click, click, text, text):
        assert_success(oa_push(runtime, body))
    runtime.drain()
    # Then each is on the profile once
    profile = follower(runtime, openid)
    assert profile["activity"]["custom_counts"] == {"wechat_menu_click": 1, "wechat_message": 1}
    assert len(timeline(runtime, profile["person_id"])) == 2


def test_bad_signature_and_old_timestamp_are_401(runtime: LocalRuntime) -> None:
    openid = "oE2eWxAuth00000000000000001"
    body = sample_push("subscribe.xml", openid)
    assert oa_push(runtime, body, token="guessed-token").status == 401
    assert oa_push(runtime, body, age_s=3600).status == 401
    assert oa_push(runtime, b"", method="GET", token="guessed-token", echostr="1").status == 401
    runtime.drain()
    assert person(runtime, "wechat_openid", openid, OA) is None


def test_oversize_malformed_and_encrypted_pushes_are_rejected(runtime: LocalRuntime) -> None:
    big = b"<xml><Content>" + b"x" * OA_MAX_BODY + b"</Content></xml>"
    assert oa_push(runtime, big).status == 413
    malformed = oa_push(runtime, b"<xml><FromUserName>oE2e</FromUserName")
    assert malformed.status == 400 and json.loads(malformed.body)["field"] == "body"
    missing = oa_push(runtime, b"<xml><CreateTime>1767232800</CreateTime><MsgType>event</MsgType></xml>")
    assert missing.status == 400 and json.loads(missing.body)["field"] == "FromUserName"
    encrypted = oa_push(runtime, (SAMPLES / "safe_mode.xml").read_bytes(), encrypt_type="aes", msg_signature="x")
    assert encrypted.status == 400 and "encoding_aes_key" in json.loads(encrypted.body)["message"]
    xxe = b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><FromUserName>&x;</FromUserName></xml>'
    assert oa_push(runtime, xxe).status == 400


# ---- mini-program ------------------------------------------------------------------------------------------------


def test_mini_program_order_and_phone_binding_make_one_person(runtime: LocalRuntime) -> None:
    # Given the sample batch for a new user: page view, getPhoneNumber, cart add, paid order, a share
    payload = json.loads((SAMPLES / "miniprogram_events.json").read_text())
    openid, unionid, phone = "oE2eMpOrder0000000000000001", "oE2eUnion000000000000000001", "13712340001"
    payload.update(openid=openid, unionid=unionid)
    for event in payload["events"]:
        event["id"] = f"e2e-{event['id']}"
    payload["events"][1]["properties"].update(phoneNumber=phone, purePhoneNumber=phone)
    payload["events"][3]["properties"]["order_id"] = "MP-E2E-0001"
    # When posted by the mini-program's server
    response = mp_post(runtime, payload)
    assert response.status == 202, response.body
    assert json.loads(response.body)["accepted"] == 5
    runtime.drain()
    # Then one person holds the OpenID, the UnionID and the phone, with the order in fen
    profile = person(runtime, "wechat_openid", openid, MP)
    assert profile is not None
    keys = {i["key"] for i in profile["identifiers"]}
    assert {f"wechat_openid:{MP}:{openid}", f"wechat_unionid:{unionid}", "phone:+8613712340001"} <= keys
    by_phone, by_union = person(runtime, "phone", phone), person(runtime, "wechat_unionid", unionid)
    assert by_phone is not None and by_union is not None
    assert by_phone["person_id"] == by_union["person_id"] == profile["person_id"]
    [order] = profile["orders"]["online"]
    assert order["order_id"] == "MP-E2E-0001" and order["total_minor"] == 7600 and order["source"] == "mini_program"
    assert profile["activity"]["page_views"] == 1 and profile["activity"]["cart_adds"] == 1
    # And the same batch again is all duplicates
    again = json.loads(mp_post(runtime, payload).body)
    assert again["accepted"] == 0 and again["duplicates"] == 5


def test_mini_program_bad_signature_and_bad_items(runtime: LocalRuntime) -> None:
    payload = {
        "openid": "oE2eMpBad00000000000000001",
        "events": [
            {"id": "e2e-bad-1", "name": "add_to_cart", "timestamp": 1767236470000, "properties": {"sku": "S"}},
            {"id": "e2e-ok-1", "name": "page_view", "timestamp": 1767236470000, "properties": {"path": "pages/a"}},
        ],
    }
    assert mp_post(runtime, payload, secret="guessed").status == 401
    response = mp_post(runtime, payload)
    body = json.loads(response.body)
    assert response.status == 207 and body["accepted"] == 1
    assert body["rejected"][0]["errors"][0]["field"] == "events.0.properties.price"
    garbled = runtime.http(
        "POST",
        f"/v1/wechat/{MP}/events",
        b"{oops",
        {"x-cdp-signature": sign_cdp(SECRET, b"{oops", int(time.time()))},
    )
    assert garbled.status == 400 and json.loads(garbled.body)["field"] == "body"


def test_a_signature_reused_with_another_body_is_refused(runtime: LocalRuntime) -> None:
    # Given a follow push accepted with its signed query (timestamp, nonce)
    timestamp, nonce = str(int(time.time())), str(next(_nonces))
    query = urlencode({"signature": oa_signature(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce})
    path, headers = f"/v1/wechat/{OA}?{query}", {"content-type": "text/xml"}
    follow = sample_push("subscribe.xml", "oE2eReplayVictim01")
    assert_success(runtime.http("POST", path, follow, headers))
    # When the same query carries another body (an unfollow) within the window
    forged = runtime.http("POST", path, sample_push("unsubscribe.xml", "oE2eReplayVictim01"), headers)
    # Then it is refused, while WeChat's own resend of the first push is still answered success
    assert forged.status == 401, forged.body
    assert_success(runtime.http("POST", path, follow, headers))
    runtime.drain()
    consent = follower(runtime, "oE2eReplayVictim01")["consent"]
    assert consent["wechat"]["granted"] is True, consent


def test_the_mini_programs_message_push_checks_its_url_and_keeps_the_answers_per_template(
    runtime: LocalRuntime,
) -> None:
    # Given the mini-program's message push URL (the same route, its own token) / Then WeChat's URL check passes
    check = oa_push(runtime, b"", method="GET", token=MP_TOKEN, app=MP, echostr="7263495830192837465")
    assert check.status == 200 and check.body == b"7263495830192837465"
    # When the person answers the subscribe prompt (JSON format), and WeChat pushes it twice
    openid = "oE2eMpPopup00000000000001"
    body = (SAMPLES / "subscribe_msg_popup.json").read_text().replace("oMp4Kq7Zt2LwX9cVb3Nn8RjY5sHe", openid).encode()
    for _ in range(2):
        assert_success(oa_push(runtime, body, token=MP_TOKEN, app=MP, content_type="application/json"))
    runtime.drain()
    # Then each template's answer is on the profile once, and the WeChat opt-in is untouched
    profile = person(runtime, "wechat_openid", openid, MP)
    assert profile is not None
    assert profile["activity"]["custom_counts"] == {"wechat_subscribe_accepted": 1, "wechat_subscribe_rejected": 1}
    assert profile["consent"] == {}
    # And the official account's token does not sign for the mini-program
    assert oa_push(runtime, body, app=MP, content_type="application/json").status == 401
