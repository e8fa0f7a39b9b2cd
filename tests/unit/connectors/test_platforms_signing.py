"""TOP and JOS request signing, checked against vectors worked out by hand from the documented algorithms, and the
requests the clients build (what the recorded transport, like the gateways, verifies)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from cdp.connectors.platforms.jd import JdClient, jd_sign
from cdp.connectors.platforms.ports import Kind, PlatformApiError
from cdp.connectors.platforms.tmall import TopClient, top_sign
from cdp.connectors.platforms.transport import RecordedTransport, check_recorded, https_transport
from cdp.connectors.sources import PlatformShop

EVENTS = Path(__file__).resolve().parents[3] / "events"
NOW = datetime(2026, 3, 6, 0, 0, 0, tzinfo=UTC)  # 08:00:00 in Beijing

# The worked example of TOP's signing documentation (taobao.item.seller.get, secret "helloworld").
TOP_DOC_PARAMS = {
    "method": "taobao.item.seller.get",
    "app_key": "12345678",
    "session": "test",
    "timestamp": "2016-01-01 12:00:00",
    "format": "json",
    "v": "2.0",
    "sign_method": "md5",
    "fields": "num_iid,title,nick,price,num",
    "num_iid": "11223344",
}
# Its parameters sorted by name, each name then value, written out by hand:
TOP_DOC_JOINED = (
    "app_key12345678fieldsnum_iid,title,nick,price,numformatjsonmethodtaobao.item.seller.get"
    "num_iid11223344sessiontestsign_methodmd5timestamp2016-01-01 12:00:00v2.0"
)


def shop(platform: str = "tmall", signing_key: str = "s", session: str | None = "sess-1") -> PlatformShop:
    return PlatformShop(
        brand_id="demo-brand",
        platform=platform,  # type: ignore[arg-type]
        app_key=f"local-{platform}",
        app_secret=SecretStr(signing_key),
        session=SecretStr(session) if session else None,
    )


def test_top_md5_matches_the_documented_example() -> None:
    # Given the documentation's request and secret / When signed with md5 / Then the documented signature comes out
    assert top_sign(TOP_DOC_PARAMS, "helloworld", "md5") == "66987CB115214E59E6EC978214934FB8"
    expected = hashlib.md5(f"helloworld{TOP_DOC_JOINED}helloworld".encode(), usedforsecurity=False).hexdigest().upper()
    assert top_sign(TOP_DOC_PARAMS, "helloworld", "md5") == expected


@pytest.mark.parametrize(("method", "digest"), [("hmac", hashlib.md5), ("hmac-sha256", hashlib.sha256)])
def test_top_hmac_keys_the_digest_with_the_secret(method: str, digest: object) -> None:
    # Given the same request / When signed with an HMAC method / Then it is HMAC(secret, joined), upper hex
    params = {**TOP_DOC_PARAMS, "sign_method": method}
    joined = TOP_DOC_JOINED.replace("sign_methodmd5", f"sign_method{method}")
    expected = hmac.new(b"helloworld", joined.encode(), digest).hexdigest().upper()  # type: ignore[arg-type]
    assert top_sign(params, "helloworld", method) == expected


def test_top_sign_leaves_out_sign_and_empty_values() -> None:
    # Given the request with a stale sign and an empty optional parameter / Then neither changes the signature
    noisy = {**TOP_DOC_PARAMS, "sign": "STALE", "partner_id": ""}
    assert top_sign(noisy, "helloworld", "md5") == top_sign(TOP_DOC_PARAMS, "helloworld", "md5")
    with pytest.raises(ValueError, match="sign_method"):
        top_sign(TOP_DOC_PARAMS, "helloworld", "sha1")


def test_jd_sign_wraps_the_sorted_pairs_in_the_secret() -> None:
    business = '{"page":1,"page_size":100}'
    params = {
        "method": "jingdong.pop.order.search",
        "app_key": "KEY1",
        "access_token": "TOKEN1",
        "timestamp": "2026-03-06 08:00:00",
        "v": "2.0",
        "360buy_param_json": business,
    }
    # "360buy_param_json" sorts first: digits before letters
    joined = (
        f"360buy_param_json{business}access_tokenTOKEN1app_keyKEY1methodjingdong.pop.order.search"
        "timestamp2026-03-06 08:00:00v2.0"
    )
    assert (
        jd_sign(params, "SECRET")
        == hashlib.md5(f"SECRET{joined}SECRET".encode(), usedforsecurity=False).hexdigest().upper()
    )


def test_top_client_builds_a_signed_request_in_beijing_time() -> None:
    # Given a Tmall shop and a recording transport
    transport = RecordedTransport(EVENTS, {"local-tmall": "s"})
    client = TopClient(shop(), transport, clock=lambda: NOW)
    # When orders of a window are fetched
    client.fetch(Kind.ORDERS, NOW.replace(hour=0), NOW.replace(hour=1), None)
    # Then the system parameters are TOP's and the signature is HMAC-SHA256 over the sorted pairs
    method, params = transport.calls[0]
    assert method == "taobao.trades.sold.increment.get"
    assert params["timestamp"] == "2026-03-06 08:00:00"
    assert (params["format"], params["v"], params["sign_method"], params["session"]) == (
        "json",
        "2.0",
        "hmac-sha256",
        "sess-1",
    )
    assert (params["start_modified"], params["end_modified"]) == ("2026-03-06 08:00:00", "2026-03-06 09:00:00")
    joined = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    assert params["sign"] == hmac.new(b"s", joined.encode(), hashlib.sha256).hexdigest().upper()


def test_jd_client_sends_business_params_as_one_json_string() -> None:
    transport = RecordedTransport(EVENTS, {"local-jd": "s"})
    client = JdClient(shop("jd"), transport, clock=lambda: NOW)
    client.fetch(Kind.ORDERS, NOW, NOW.replace(hour=1), None)
    _, params = transport.calls[0]
    business = json.loads(params["360buy_param_json"])
    assert business["start_date"] == "2026-03-06 08:00:00" and business["dateType"] == 0 and business["page"] == 1
    assert (params["access_token"], params["v"], params["timestamp"]) == ("sess-1", "2.0", "2026-03-06 08:00:00")
    assert params["sign"] == jd_sign({k: v for k, v in params.items() if k != "sign"}, "s")


@pytest.mark.parametrize("platform", ["tmall", "jd"])
def test_a_wrongly_signed_call_is_refused_like_the_gateway_does(platform: str) -> None:
    # Given a client holding another secret than the one the gateway knows
    transport = RecordedTransport(EVENTS, {f"local-{platform}": "the-real-secret"})
    client = (TopClient if platform == "tmall" else JdClient)(shop(platform, signing_key="wrong"), transport)
    # When it calls / Then the gateway's error answer becomes a PlatformApiError
    with pytest.raises(PlatformApiError, match="Invalid signature"):
        client.fetch(Kind.ORDERS, NOW, NOW, None)


def test_https_transport_refuses_plain_http() -> None:
    with pytest.raises(PlatformApiError, match="non-HTTPS"):
        https_transport("http://gw.api.taobao.com/router/rest", {"method": "x"})


@pytest.mark.parametrize(
    "path", sorted([*EVENTS.glob("tmall/*.json"), *EVENTS.glob("jd/*.json")]), ids=lambda p: p.name
)
def test_every_recorded_sample_is_one_gateway_answer(path: Path) -> None:
    check_recorded(json.loads(path.read_text(encoding="utf-8")))
