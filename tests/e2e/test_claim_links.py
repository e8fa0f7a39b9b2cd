"""Claim links end to end over the local HTTP API with the real handlers: a marketer's key mints a link for one person,
the person opens it without any key (a small HTML page in Chinese and English) and claims the offer; the claim is an
issue under an id derived from the link (claimed twice: the same entry, and the page says so), and `coupon_issued`
then `coupon_claimed` reach the timeline. A changed, foreign or expired link is a 4xx page, never a 5xx. A red
packet claimed from a link is paid through the fake WeChat Pay server, once; a WeChat Pay cash coupon is issued by it
and redeemed by the order that names it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.connectors.aws import SecretsManagerSources
from cdp.offers.claims import ClaimToken, mint_claim_token
from cdp.shared.time import utc_now
from cdp_local.fake_wechat_pay import FakeWeChatPay
from cdp_local.runtime import HttpResponse, LocalRuntime
from cdp_local.runtime.environment import STORE_API_KEY

BRAND = "demo-brand"
LINK_SECRET = "local-redirect-secret"  # the local runtime's documented tracked-link secret
APP = "wx-local-oa"


def _call(runtime: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json", "x-api-key": key or runtime.admin_key}
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    response = runtime.http(method, path, raw, headers)
    return response.status, json.loads(response.body) if response.body else None


def _ok(runtime: LocalRuntime, method: str, path: str, body: Any = None) -> Any:
    status, answer = _call(runtime, method, path, body)
    assert 200 <= status < 300, (status, answer)
    return answer


def _page(runtime: LocalRuntime, method: str, path: str) -> tuple[HttpResponse, str]:
    """A request as a phone's browser makes it: no key, a form post with nothing in it."""
    headers = {"user-agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0"}
    if method == "POST":
        headers["content-type"] = "application/x-www-form-urlencoded"
    response = runtime.http(method, path, b"", headers)
    return response, response.body.decode("utf-8")


def _person(runtime: LocalRuntime, phone: str, openid: str | None = None) -> str:
    identifiers: list[dict[str, str]] = [{"type": "phone", "value": phone}]
    if openid:
        identifiers.append({"type": "wechat_openid", "value": openid, "scope": APP})
    event = {
        "event_id": f"claim-e2e-{phone}",
        "event_type": "identify",
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": "2026-11-01T10:00:00+08:00",
        "identifiers": identifiers,
        "properties": {"name": "Claim Tester"},
    }
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps(event).encode(), headers).status == 202
    assert runtime.drain().dead_lettered == 0
    return str(_ok(runtime, "GET", f"/v1/profiles/by-identifier/phone/{phone}?brand_id={BRAND}")["person_id"])


COUPON = {
    "brand_id": BRAND,
    "offer_id": "e2e-claim-20-off",
    "name": "好评券 20 off 100",
    "currency": "CNY",
    "coupon": {"amount_off_minor": 2000, "threshold_minor": 10000, "code_prefix": "CLM"},
    "validity": {"days": 30},
}


@pytest.fixture(scope="module")
def coupon(runtime: LocalRuntime) -> str:
    _ok(runtime, "POST", "/v1/offers", COUPON)
    return str(COUPON["offer_id"])


def _link(runtime: LocalRuntime, offer_id: str, body: dict[str, Any]) -> dict[str, Any]:
    status, link = _call(runtime, "POST", f"/v1/offers/{offer_id}/claim-links?brand_id={BRAND}", body)
    assert status == 201, link
    return dict(link)


def test_a_person_claims_a_coupon_from_a_link_once(runtime: LocalRuntime, coupon: str) -> None:
    person = _person(runtime, "13766990101")
    # Given a link minted for her with the offers:issue key
    link = _link(runtime, coupon, {"person_id": person, "ref": "review-e2e-1", "valid_days": 3})
    assert link["url"] == f"http://127.0.0.1:8787{link['path']}" and link["issue_id"] == "claim:review-e2e-1"
    # When she opens it: a page in both languages with the offer and a claim button, no key needed
    opened, html = _page(runtime, "GET", link["path"])
    assert opened.status == 200 and opened.headers["content-type"].startswith("text/html")
    assert "好评券 20 off 100" in html and "满¥100.00减¥20.00" in html and "Claim now" in html and "立即领取" in html
    assert "default-src 'none'" in opened.headers["content-security-policy"]
    assert opened.headers["cache-control"] == "no-store" and opened.headers["referrer-policy"] == "no-referrer"
    assert _ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")["entries"] == []  # a GET issues nothing
    # And claims it
    claimed, html = _page(runtime, "POST", link["path"])
    (entry,) = _ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")["entries"]
    assert claimed.status == 200 and "领取成功" in html and "Claimed" in html and entry["code"] in html
    # Then claiming again (a double tap, the link opened again) is the same entry, and the page says so
    again, html = _page(runtime, "POST", link["path"])
    assert again.status == 200 and "Already claimed" in html and entry["code"] in html
    reopened, html = _page(runtime, "GET", link["path"])
    assert reopened.status == 200 and "您已领取过" in html and "Claim now" not in html
    assert len(_ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")["entries"]) == 1
    # And a second link with the same ref claims that same entry too
    twin = _link(runtime, coupon, {"person_id": person, "ref": "review-e2e-1"})
    assert twin["token"] != link["token"] and "Already claimed" in _page(runtime, "POST", twin["path"])[1]
    # And the timeline has the issue, then the claim, once each
    runtime.drain()
    timeline = _ok(runtime, "GET", f"/v1/profiles/{person}/timeline")
    kinds = [e["event"]["event_type"] for e in timeline["entries"] if e["event"]["source"] == "cdp"]
    assert sorted(kinds) == ["coupon_claimed", "coupon_issued"], kinds
    (claim_event,) = [e["event"] for e in timeline["entries"] if e["event"]["event_type"] == "coupon_claimed"]
    assert claim_event["properties"]["coupon_id"] == coupon and claim_event["properties"]["code"] == entry["code"]


def test_a_changed_or_foreign_link_is_a_400_page_and_issues_nothing(runtime: LocalRuntime, coupon: str) -> None:
    person = _person(runtime, "13766990102")
    link = _link(runtime, coupon, {"person_id": person})
    payload, mac = link["token"].split(".")
    other = _person(runtime, "13766990103")
    other_payload = _link(runtime, coupon, {"person_id": other})["token"].split(".")[0]
    foreign = mint_claim_token(ClaimToken(BRAND, coupon, person, "x", utc_now() + timedelta(days=1)), "not-our-key")
    for token in (
        f"{other_payload}.{mac}",  # another person's claim under this link's MAC
        f"{payload[:-2]}xx.{mac}",
        f"{payload}.{mac[:-1]}A" if mac[-1] != "A" else f"{payload}.{mac[:-1]}B",
        foreign,
        payload,
    ):
        for method in ("GET", "POST"):
            response, html = _page(runtime, method, f"/v1/claim/{token}")
            assert response.status == 400, (method, token, html[:200])
            assert "链接无效" in html and "This link is not valid" in html
    assert _ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")["entries"] == []
    assert _ok(runtime, "GET", f"/v1/wallets/{other}?brand_id={BRAND}")["entries"] == []


def test_an_expired_link_is_a_410_page(runtime: LocalRuntime, coupon: str) -> None:
    person = _person(runtime, "13766990104")
    # Given a genuine link for her that expired a day ago (minted two days ago for one day, with the local key)
    token = mint_claim_token(
        ClaimToken(BRAND, coupon, person, "old-review", utc_now() - timedelta(days=1)), LINK_SECRET
    )
    # When it is opened or claimed now / Then a 410 page, and nothing is issued
    for method in ("GET", "POST"):
        response, html = _page(runtime, method, f"/v1/claim/{token}")
        assert response.status == 410 and "链接已过期" in html and "expired" in html, html[:300]
    assert _ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")["entries"] == []


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/offers/e2e-claim-20-off/claim-links?brand_id=demo-brand", {"person_id": ""}, 422, "person_id"),
        ("/v1/offers/e2e-claim-20-off/claim-links?brand_id=demo-brand", {"person_id": "p", "ref": "a b"}, 422, "ref"),
        (
            "/v1/offers/e2e-claim-20-off/claim-links?brand_id=demo-brand",
            {"person_id": "p", "valid_days": 91},
            422,
            "valid_days",
        ),
        ("/v1/offers/e2e-claim-20-off/claim-links?brand_id=demo-brand", {"person_id": "p", "x": 1}, 422, "x"),
        ("/v1/offers/e2e-claim-20-off/claim-links?brand_id=demo-brand", b"[]", 400, "body"),
        ("/v1/offers/e2e-claim-20-off/claim-links?brand_id=demo-brand", {"person_id": "nobody"}, 404, None),
        ("/v1/offers/no-such-offer/claim-links?brand_id=demo-brand", {"person_id": "nobody"}, 404, None),
        ("/v1/offers/e2e-claim-20-off/claim-links", {"person_id": "p"}, 400, "brand_id"),
    ],
)
def test_a_bad_claim_link_request_is_a_4xx_naming_the_field(
    runtime: LocalRuntime, coupon: str, path: str, body: Any, status: int, field: str | None
) -> None:
    got, answer = _call(runtime, "POST", path, body)
    assert got == status, answer
    if field is not None:
        fields = [answer.get("field"), *(e["field"] for e in answer.get("errors", []))]
        assert any(f and f.startswith(field) for f in fields), answer


def test_minting_a_link_needs_offers_issue_on_the_whole_brand(runtime: LocalRuntime, coupon: str) -> None:
    person = _person(runtime, "13766990105")
    path, body = f"/v1/offers/{coupon}/claim-links?brand_id={BRAND}", {"person_id": person}
    assert _call(runtime, "POST", path, body, key=runtime.api_key)[0] == 403  # the ingest key: no offers scope
    assert _call(runtime, "POST", path, body, key="e2e-sh01-till-offers-key")[0] == 403  # offers:read, one store
    assert _call(runtime, "POST", path, body, key=STORE_API_KEY)[0] == 403
    assert _call(runtime, "POST", path, body, key="not-a-key")[0] == 401
    assert runtime.http("POST", path, json.dumps(body).encode(), {"content-type": "application/json"}).status == 401


def test_a_retired_offers_link_is_refused_and_its_page_says_it_ended(runtime: LocalRuntime) -> None:
    person = _person(runtime, "13766990106")
    _ok(runtime, "POST", "/v1/offers", {**COUPON, "offer_id": "e2e-claim-retired"})
    link = _link(runtime, "e2e-claim-retired", {"person_id": person})
    _ok(runtime, "POST", f"/v1/offers/e2e-claim-retired/retire?brand_id={BRAND}")
    response, html = _page(runtime, "POST", link["path"])
    assert response.status == 409 and "活动已结束" in html and "This offer has ended" in html
    status, answer = _call(
        runtime, "POST", f"/v1/offers/e2e-claim-retired/claim-links?brand_id={BRAND}", {"person_id": person}
    )
    assert (status, answer["error"]) == (409, "retired")


# ---- a red packet claimed from a link, paid through the fake WeChat Pay ---------------------------------------


@pytest.fixture
def wechat_pay(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWeChatPay]:
    """The fake merchant in the sources secret for demo-brand (re-read on every call while the test runs), removed
    afterwards."""
    secrets = runtime.client("secretsmanager")
    before = secrets.get_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME)["SecretString"]
    with FakeWeChatPay(wxappid=APP, balance_minor=5_000) as fake:
        document = {**json.loads(before), "wechat_pay": {BRAND: fake.merchant(timeout_s=2.0)}}
        secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(document))
        monkeypatch.setattr(SecretsManagerSources, "TTL_S", 0.0)  # as if the secret's TTL had run out
        try:
            yield fake
        finally:
            secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=before)
            # a claim page reads the secret (its TTL still 0): the offer function forgets the fake merchant now
            assert runtime.http("GET", "/v1/claim/reload.x").status == 400


RED_PACKET = {
    "brand_id": BRAND,
    "offer_id": "e2e-review-red-packet",
    "name": "好评红包",
    "currency": "CNY",
    "red_packet": {"amount_minor": 1888, "wishing": "感谢您的好评"},
    "validity": {"days": 7},
    "budget_pools": ["e2e-red-packets"],
}


def test_a_red_packet_claimed_from_a_link_is_paid_once_and_a_refusal_releases_it(
    runtime: LocalRuntime, wechat_pay: FakeWeChatPay
) -> None:
    pool = {"brand_id": BRAND, "pool_id": "e2e-red-packets", "total_minor": 10_000, "currency": "CNY"}
    _ok(runtime, "POST", "/v1/budgets", {**pool, "form": "red_packet"})
    _ok(runtime, "POST", "/v1/offers", RED_PACKET)
    person = _person(runtime, "13766990107", openid="oE2E_claim_red_packet_0001")
    link = _link(runtime, "e2e-review-red-packet", {"person_id": person, "ref": "review-rp-1"})
    # When she claims it, twice
    claimed, html = _page(runtime, "POST", link["path"])
    again, html_again = _page(runtime, "POST", link["path"])
    # Then one packet of 18.88 went to her OpenID, the page says it was sent on WeChat, and 18.88 is spent
    assert claimed.status == 200 and "sent to you on WeChat" in html and "¥18.88" in html, html
    assert again.status == 200 and "Already claimed" in html_again
    (packet,) = wechat_pay.packets.values()
    assert (packet.re_openid, packet.total_amount) == ("oE2E_claim_red_packet_0001", 1888)
    balance = _pool(runtime, "e2e-red-packets")
    assert balance == (10_000 - 1888, 0, 1888)
    # When the merchant's balance (5,000 - 1,888) cannot pay the next person's packet... it can; make it short
    wechat_pay.set_balance(100)
    other = _person(runtime, "13766990108", openid="oE2E_claim_red_packet_0002")
    refused, html = _page(runtime, "POST", _link(runtime, "e2e-review-red-packet", {"person_id": other})["path"])
    # Then a 409 page says it could not be sent, and the budget holds nothing for it
    assert refused.status == 409 and "红包发放失败" in html and "could not be sent" in html, html
    assert _pool(runtime, "e2e-red-packets") == balance
    (failed,) = _ok(runtime, "GET", f"/v1/wallets/{other}?brand_id={BRAND}")["entries"]
    assert (failed["state"], failed["payout"]["reason"]) == ("failed", "NOTENOUGH")
    # And the API's issue route answers the same refusal as a 409 naming the reason
    status, answer = _call(
        runtime, "POST", f"/v1/offers/e2e-review-red-packet/issue?brand_id={BRAND}", {"person_id": other}
    )
    assert (status, answer["error"], answer["reason"]) == (409, "red_packet_not_paid", "NOTENOUGH"), answer


WECHAT_PAY_COUPON = {
    "brand_id": BRAND,
    "offer_id": "e2e-wxpay-20-off-100",
    "name": "微信支付代金券 满100减20",
    "currency": "CNY",
    "coupon": {
        "amount_off_minor": 2000,
        "threshold_minor": 10000,
        "codes": "external",
        "external": {"system": "wechat_pay", "stock_id": "16000001"},
    },
    "validity": {"days": 30},
    "budget_pools": ["e2e-wxpay"],
}


def test_a_wechat_pay_coupon_is_issued_by_wechat_pay_and_redeemed_by_the_mini_program_order_naming_it(
    runtime: LocalRuntime, wechat_pay: FakeWeChatPay
) -> None:
    wechat_pay.add_stock("16000001", remaining=1)
    pool = {"brand_id": BRAND, "pool_id": "e2e-wxpay", "total_minor": 10_000, "currency": "CNY", "form": "coupon"}
    _ok(runtime, "POST", "/v1/budgets", pool)
    _ok(runtime, "POST", "/v1/offers", WECHAT_PAY_COUPON)
    person = _person(runtime, "13766990111", openid="oE2E_wxpay_coupon_0001")
    # When the API issues it to her
    issued = _ok(runtime, "POST", f"/v1/offers/e2e-wxpay-20-off-100/issue?brand_id={BRAND}", {"person_id": person})
    # Then WeChat Pay issued one coupon of the stock to her OpenID, and its coupon_id is the wallet entry's code
    (coupon,) = wechat_pay.coupons.values()
    assert coupon.openid == "oE2E_wxpay_coupon_0001"
    assert (issued["entry"]["code"], issued["payout"]["status"]) == (coupon.coupon_id, "granted")
    assert _pool(runtime, "e2e-wxpay") == (8_000, 2_000, 0)
    # When her mini-program order names the coupon (128 of lines, 108 paid)
    order = {
        "event_id": "wxpay-e2e-order",
        "event_type": "order_placed",
        "source": "mini_program",
        "brand_id": BRAND,
        "occurred_at": utc_now().isoformat(),
        "identifiers": [{"type": "phone", "value": "13766990111"}],
        "properties": {
            "order_id": "WXPAY-E2E-1",
            "lines": [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 12_800}],
            "total_minor": 10_800,
            "currency": "CNY",
            "coupon_code": coupon.coupon_id,
        },
    }
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps(order).encode(), headers).status == 202
    assert runtime.drain().dead_lettered == 0
    # Then the entry is redeemed for that order and 20 yuan is spent from the pool
    (entry,) = _ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")["entries"]
    assert (entry["state"], entry["order_id"]) == ("redeemed", "WXPAY-E2E-1")
    assert _pool(runtime, "e2e-wxpay") == (8_000, 0, 2_000)
    # When the stock is used up at WeChat Pay, the next person's issue is a 409 naming WeChat Pay's reason
    other = _person(runtime, "13766990112", openid="oE2E_wxpay_coupon_0002")
    status, answer = _call(
        runtime, "POST", f"/v1/offers/e2e-wxpay-20-off-100/issue?brand_id={BRAND}", {"person_id": other}
    )
    assert (status, answer["error"], answer["reason"]) == (409, "coupon_not_granted", "NOT_ENOUGH"), answer
    # And nothing is held for it: the pool is as before
    assert _pool(runtime, "e2e-wxpay") == (8_000, 0, 2_000)


def _pool(runtime: LocalRuntime, pool_id: str) -> tuple[int, int, int]:
    (found,) = [
        p for p in _ok(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"] if p["pool"]["pool_id"] == pool_id
    ]
    return found["available_minor"], found["reserved_minor"], found["committed_minor"]


def test_the_cli_mints_a_link_that_a_browser_claims_over_the_local_server(runtime: LocalRuntime, coupon: str) -> None:
    import urllib.request

    from typer.testing import CliRunner

    from cdp_local.cli import app
    from cdp_local.http_server import LocalApiServer

    _person(runtime, "13766990109")
    with LocalApiServer(runtime, port=0) as server:

        def cdp(*args: str) -> str:
            result = CliRunner().invoke(app, [*args, "--url", server.url], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        # Given a link minted by the CLI for a phone
        link = json.loads(cdp("offer", "claim-link", coupon, "--phone", "13766990109", "--ref", "cli-1", "--json"))
        text = cdp("offer", "claim-link", coupon, "--phone", "13766990109", "--ref", "cli-1", "--days", "2")
        assert "claim link for" in text and "/v1/claim/" in text and "claim:cli-1" in text
        # When a browser opens it and posts its form, over real HTTP
        with urllib.request.urlopen(server.url + link["path"]) as opened:  # noqa: S310 - the local server
            page = opened.read().decode()
            assert opened.status == 200 and opened.headers["content-type"] == "text/html; charset=utf-8"
        assert '<form method="post">' in page
        claim = urllib.request.Request(server.url + link["path"], data=b"", method="POST")  # noqa: S310
        with urllib.request.urlopen(claim) as claimed:  # noqa: S310 - the local server
            assert claimed.status == 200 and "领取成功" in claimed.read().decode()
