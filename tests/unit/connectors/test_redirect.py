"""Tracked links, pure: the signed token (round trip, tampering, no readable PII), the target rules (no open
redirect), the 302 and its message_clicked event, and link wrapping of a rendered message."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from cdp.connectors.base import InboundRequest
from cdp.connectors.redirect import (
    MAX_TOKEN_CHARS,
    LinkClaims,
    RedirectConnector,
    _mac,
    check_target,
    mint_token,
    read_token,
    wrap_links,
)
from cdp.connectors.short_links import SHORT_CODE, ShortLinks, new_code
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError, NotFoundError
from cdp.ingest.events import parse_event
from cdp_local.runtime.environment import LOCAL_SOURCES

SECRET = "local-redirect-secret"  # LOCAL_SOURCES["redirect"]
SOURCES = parse_sources(LOCAL_SOURCES)
NOW = datetime(2026, 3, 2, 8, 16, 5, tzinfo=UTC)
CLAIMS = LinkClaims(
    message_id="3f2b8c1e-5d4a-5b6c-9e7f-0a1b2c3d4e5f",
    channel="email",
    url="https://shop.demo-bakery.example.cn/spring?utm_source=email",
    identifier_key="email:li.na@example.cn",
    brand_id="demo-brand",
    campaign_id="spring-launch",
)
BASE = "https://api.cdp.example.cn"


def click(token: str, at: datetime = NOW, sources: object = SOURCES) -> tuple[RedirectConnector, InboundRequest]:
    request = InboundRequest(
        connector="redirect",
        method="GET",
        body=b"",
        received_at=at,
        request_id="req-r-1",
        key=token,
        headers={"user-agent": "Mozilla/5.0 (iPhone)"},
    )
    return RedirectConnector(), request


def follow(token: str, at: datetime = NOW) -> tuple[int, dict[str, str], dict[str, object]]:
    connector, request = click(token, at)
    binding = connector.authenticate(request, SOURCES)
    mapped = connector.map(request, binding)
    assert mapped.reply is not None and not mapped.rejected, mapped.rejected
    (event,) = mapped.items
    parse_event(event)
    return mapped.reply.status, mapped.reply.headers, event


# ---- the token ---------------------------------------------------------------------------------------------------


def test_a_token_round_trips_and_holds_no_readable_identifier() -> None:
    token = mint_token(CLAIMS, SECRET)
    assert read_token(token, SECRET) == CLAIMS
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert b"li.na" not in payload and b"example.cn" not in payload.replace(b"demo-bakery.example.cn", b"")
    assert set(json.loads(payload)) == {"m", "c", "ch", "u", "i", "b"}
    # two mints of the same link differ (random nonce) but both read back the same claims
    assert mint_token(CLAIMS, SECRET) != token and read_token(mint_token(CLAIMS, SECRET), SECRET) == CLAIMS


def _forged(body: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{payload}.{_mac(SECRET, payload)}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:],  # a payload character
        lambda t: t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:],  # a MAC character
        lambda t: t.split(".")[0],  # no MAC
        lambda t: t + ".x",
        lambda t: mint_token(CLAIMS, "another-secret"),
        lambda t: (
            mint_token(LinkClaims(**{**CLAIMS.__dict__, "url": "https://evil.example/"}), "x").split(".")[0]
            + "."
            + t.split(".")[1]
        ),  # another payload under this MAC
        lambda t: "",
        lambda t: "%%%.%%%",
        lambda t: "A" * (MAX_TOKEN_CHARS + 1),
        lambda t: _forged({"m": "x"}),  # signed (a leaked secret) but not our claims
        lambda t: _forged(["m"]),
        lambda t: _forged({"m": "m", "ch": "email", "u": "https://a.example/", "i": "AAAA", "b": "demo-brand"}),
    ],
)
def test_a_tampered_or_foreign_token_is_400(tamper: object) -> None:
    token = tamper(mint_token(CLAIMS, SECRET))  # type: ignore[operator]
    with pytest.raises(InvalidInputError) as error:
        read_token(token, SECRET)
    assert error.value.location == "token"


def test_trailing_punctuation_a_messaging_app_took_into_the_link_is_ignored() -> None:
    token = mint_token(CLAIMS, SECRET)
    assert read_token(token + ".", SECRET) == read_token(token + ")", SECRET) == CLAIMS


def test_a_link_that_could_not_be_followed_is_not_minted() -> None:
    with pytest.raises(ValueError, match="limit"):
        mint_token(LinkClaims(**{**CLAIMS.__dict__, "url": "https://a.example/" + "x" * 1500}), SECRET)
    with pytest.raises(ValueError, match="https"):
        mint_token(LinkClaims(**{**CLAIMS.__dict__, "url": "http://a.example/"}), SECRET)
    with pytest.raises(ValueError, match="channel"):
        mint_token(LinkClaims(**{**CLAIMS.__dict__, "channel": "fax"}), SECRET)


# ---- the target -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.demo-bakery.example.cn/spring",
        "javascript:alert(1)",
        "//evil.example/",
        "https://user:pass@shop.demo-bakery.example.cn/",
        "https://shop.demo-bakery.example.cn\\@evil.example/",
        "https://shop.demo-bakery.example.cn/\r\nSet-Cookie: x=1",
        "https://例子.example/",
        "https:///nohost",
    ],
)
def test_targets_must_be_plain_https_urls(url: str) -> None:
    with pytest.raises(InvalidInputError):
        check_target(url)


def test_allowed_hosts_block_every_other_host() -> None:
    allowed = ("shop.demo-bakery.example.cn",)
    check_target("https://SHOP.demo-bakery.example.cn/spring", allowed)
    for url in (
        "https://evil.example/",
        "https://demo-bakery.example.cn/",
        "https://shop.demo-bakery.example.cn.evil/",
    ):
        with pytest.raises(InvalidInputError, match="not allowed"):
            check_target(url, allowed)


def test_a_disallowed_target_never_redirects_even_when_signed() -> None:
    # Given a validly signed link to a host outside the configured allowed hosts
    sources = parse_sources({"redirect": {"secret": SECRET, "allowed_hosts": ["shop.demo-bakery.example.cn"]}})
    connector, request = click(mint_token(LinkClaims(**{**CLAIMS.__dict__, "url": "https://evil.example/"}), SECRET))
    # When followed / Then 400, no Location
    with pytest.raises(InvalidInputError, match="not allowed"):
        connector.authenticate(request, sources)


# ---- the click ----------------------------------------------------------------------------------------------------


def test_a_click_redirects_and_records_message_clicked() -> None:
    status, headers, event = follow(mint_token(CLAIMS, SECRET))
    assert status == 302
    assert headers == {"Location": CLAIMS.url, "Cache-Control": "no-store"}
    assert event["event_type"] == "message_clicked" and event["source"] == "email"
    assert event["brand_id"] == "demo-brand"
    assert event["identifiers"] == [{"type": "email", "value": "li.na@example.cn"}]
    assert event["properties"] == {
        "message_id": CLAIMS.message_id,
        "channel": "email",
        "url": CLAIMS.url,
        "campaign_id": "spring-launch",
    }
    assert event["context"] == {"user_agent": "Mozilla/5.0 (iPhone)"}


def test_double_clicks_within_a_minute_count_once() -> None:
    token = mint_token(CLAIMS, SECRET)
    first = follow(token, NOW.replace(second=1))[2]["event_id"]
    again = follow(mint_token(CLAIMS, SECRET), NOW.replace(second=59))[2]["event_id"]  # another mint, same link
    later = follow(token, NOW + timedelta(minutes=1))[2]["event_id"]
    other = follow(mint_token(LinkClaims(**{**CLAIMS.__dict__, "url": "https://a.example/"}), SECRET))[2]["event_id"]
    assert first == again != later
    assert other != first
    assert str(first).startswith(f"click-{CLAIMS.message_id}-")


def test_a_wechat_click_keeps_the_openid_scope() -> None:
    claims = LinkClaims(**{**CLAIMS.__dict__, "channel": "wechat", "identifier_key": "wechat_openid:wx-local-oa:oX7P"})
    _, _, event = follow(mint_token(claims, SECRET))
    assert event["source"] == "wechat_oa"
    assert event["identifiers"] == [{"type": "wechat_openid", "value": "oX7P", "scope": "wx-local-oa"}]
    assert event["properties"]["channel"] == "wechat"  # type: ignore[index]


def test_an_unknown_recipient_kind_still_redirects_but_is_rejected() -> None:
    connector, request = click(mint_token(LinkClaims(**{**CLAIMS.__dict__, "identifier_key": "fax:123"}), SECRET))
    mapped = connector.map(request, connector.authenticate(request, SOURCES))
    assert mapped.reply is not None and mapped.reply.status == 302
    assert mapped.items == [] and mapped.rejected[0].errors[0].field == "i"


def test_unconfigured_links_are_401_and_an_unverified_map_is_refused() -> None:
    connector, request = click(mint_token(CLAIMS, SECRET))
    with pytest.raises(AuthenticationError):
        connector.authenticate(request, parse_sources({}))
    binding = RedirectConnector().authenticate(request, SOURCES)
    with pytest.raises(InvalidInputError):
        RedirectConnector().map(request, binding)  # e.g. a replay: the recipient is sealed under the secret


# ---- wrapping the links of a rendered message ---------------------------------------------------------------------


def _wrap(text: str, **options: object) -> str:
    return wrap_links(
        text,
        base_url=BASE + "/",
        secret=SECRET,
        message_id=CLAIMS.message_id,
        channel="sms",
        identifier_key="phone:+8613900001111",
        brand_id="demo-brand",
        campaign_id="spring-launch",
        **options,  # type: ignore[arg-type]
    )


def _targets(text: str) -> list[str]:
    tokens = [part.split()[0].rstrip(".,;!?)\"'") for part in text.split(f"{BASE}/r/")[1:]]
    return [read_token(t, SECRET).url for t in tokens]


def test_wrap_links_rewrites_https_links_and_keeps_punctuation() -> None:
    text = "春季新品 8 折: https://shop.example.cn/spring?a=1&b=2. 详情(https://shop.example.cn/faq_(cn)) 退订回T"
    wrapped = _wrap(text)
    assert "https://shop.example.cn" not in wrapped
    assert wrapped.startswith("春季新品 8 折: https://api.cdp.example.cn/r/") and wrapped.endswith(") 退订回T")
    assert _targets(wrapped) == ["https://shop.example.cn/spring?a=1&b=2", "https://shop.example.cn/faq_(cn)"]
    claims = read_token(wrapped.split("/r/")[1].split()[0].rstrip("."), SECRET)
    assert claims.identifier_key == "phone:+8613900001111" and claims.channel == "sms"


def test_wrap_links_leaves_what_a_click_could_not_follow() -> None:
    text = f"http://plain.example/a https://other.example/b {BASE}/r/already.tracked https://shop.example.cn/c"
    wrapped = _wrap(text, allowed_hosts=("shop.example.cn",))
    assert wrapped.startswith(f"http://plain.example/a https://other.example/b {BASE}/r/already.tracked {BASE}/r/")
    assert _targets(wrapped.split("already.tracked")[1]) == ["https://shop.example.cn/c"]


def test_wrap_links_unescapes_html_attributes() -> None:
    html = '<a href="https://shop.example.cn/s?a=1&amp;b=2">买</a>'
    wrapped = _wrap(html, html_text=True)
    token = wrapped.split("/r/")[1].split('"')[0]
    assert read_token(token, SECRET).url == "https://shop.example.cn/s?a=1&b=2"
    assert wrapped.startswith(f'<a href="{BASE}/r/') and wrapped.endswith('">买</a>')


# ---- short links (SMS) ----------------------------------------------------------------------------------------------


class MemoryLinks(ShortLinks):
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def shorten(self, token: str, now: datetime) -> str:
        code = new_code()
        self.tokens[code] = token
        return code

    def resolve(self, code: str, now: datetime) -> str | None:
        return self.tokens.get(code)


def test_an_sms_link_is_a_short_code_that_redirects_like_the_token_it_stands_for() -> None:
    # Given an SMS whose link is wrapped with a short-link store
    links = MemoryLinks()
    sms = LinkClaims(**{**CLAIMS.__dict__, "channel": "sms", "identifier_key": "phone:+8613800138000"})
    text = wrap_links(
        f"Cakes: {sms.url}!",
        base_url=BASE,
        secret=SECRET,
        message_id=sms.message_id,
        channel="sms",
        identifier_key=sms.identifier_key,
        brand_id=sms.brand_id,
        campaign_id=sms.campaign_id,
        shorten=lambda _target, token: links.shorten(token, NOW),
    )
    # Then the link is {base}/r/{9 characters}: 35 characters instead of ~250
    (code,) = links.tokens
    assert text == f"Cakes: {BASE}/r/{code}!" and SHORT_CODE.match(code)
    # And following the code redirects and records the click exactly as the token would
    connector = RedirectConnector(short_links=links)
    _, request = click(code)
    mapped = connector.map(request, connector.authenticate(request, SOURCES))
    assert mapped.reply is not None and mapped.reply.headers["Location"] == sms.url
    assert mapped.items[0]["properties"]["channel"] == "sms"


def test_an_unknown_or_expired_short_code_is_404_and_a_forged_stored_token_400() -> None:
    links = MemoryLinks()
    connector = RedirectConnector(short_links=links)
    with pytest.raises(NotFoundError):
        connector.authenticate(click("Zz9Zz9Zz9")[1], SOURCES)
    # a code whose stored token was not signed with the secret (a tampered table) never redirects
    links.tokens["Aa1Aa1Aa1"] = mint_token(CLAIMS, "another-secret")
    with pytest.raises(InvalidInputError):
        connector.authenticate(click("Aa1Aa1Aa1")[1], SOURCES)


def test_a_short_code_with_the_punctuation_a_messaging_app_took_in_still_resolves() -> None:
    links = MemoryLinks()
    code = links.shorten(mint_token(CLAIMS, SECRET), NOW)
    connector = RedirectConnector(short_links=links)
    binding = connector.authenticate(click(code + ").")[1], SOURCES)
    assert binding.brand_id == "demo-brand"
