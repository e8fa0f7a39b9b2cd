"""Claim link tokens (signed as tracked links are, under a key of their own) and the claim page's HTML, with no AWS:
a genuine token names its brand, offer, person and reference until it expires; anything changed in it, another key,
or a tracked link's token is refused as invalid; the page escapes what it shows and loads nothing from elsewhere."""

# ruff: noqa: RUF001 - the page's Chinese text, with full-width punctuation

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from cdp.app import claim_page, pages
from cdp.connectors.redirect import LinkClaims, mint_token, read_token, sign_body
from cdp.errors import InvalidInputError
from cdp.offers.catalog import Offer
from cdp.offers.claims import ClaimLinkExpiredError, ClaimToken, claim_key, mint_claim_token, read_claim_token

SECRET = "local-redirect-secret"
T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)
CLAIM = ClaimToken("demo-brand", "review-red-packet", "p-123", "review-42", T0 + timedelta(days=7))


def test_a_genuine_token_names_its_claim_until_it_expires() -> None:
    token = mint_claim_token(CLAIM, SECRET)
    assert read_claim_token(token, SECRET, T0) == CLAIM
    assert CLAIM.issue_id == "claim:review-42"
    # a messaging app that takes the full stop after the link into it changes nothing
    assert read_claim_token(token + ".", SECRET, T0) == CLAIM
    # Then at its expiry, and after, it is expired (not invalid: the page says so)
    for late in (CLAIM.expires_at, CLAIM.expires_at + timedelta(days=400)):
        with pytest.raises(ClaimLinkExpiredError):
            read_claim_token(token, SECRET, late)


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_a_changed_token_another_key_or_a_tracked_link_is_invalid() -> None:
    token = mint_claim_token(CLAIM, SECRET)
    payload, mac = token.split(".")
    # the person changed in the payload, kept with the old MAC
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**body, "p": "p-999"}).encode()).rstrip(b"=").decode()
    tracked = mint_token(
        LinkClaims("m-1", "sms", "https://shop.example/x", "phone:+8613800138000", "demo-brand"), SECRET
    )
    bad = [
        f"{forged}.{mac}",
        _flip(token, 5),
        _flip(token, len(token) - 3),
        payload,
        "",
        "..",
        "x" * 5000,
        "%00.%00",
        "../../etc/passwd",
        tracked,  # a tracked link's token is signed with the tracked-link key itself, not the claim key
        mint_claim_token(CLAIM, "another-secret"),
    ]
    for candidate in bad:
        with pytest.raises(InvalidInputError) as refused:
            read_claim_token(candidate, SECRET, T0)
        assert refused.value.location == "token"
    # And a claim token is not a tracked link either
    with pytest.raises(InvalidInputError):
        read_token(mint_claim_token(CLAIM, SECRET), SECRET)


@pytest.mark.parametrize(
    "body",
    [
        {"k": "link", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": 1_900_000_000},
        {"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "", "x": 1_900_000_000},
        {"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": "1900000000"},
        {"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": True},
        {"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": 10**20},
        {"k": "claim", "b": ["demo-brand"], "o": "o", "p": "p", "r": "r", "x": 1_900_000_000},
    ],
)
def test_a_signed_body_that_is_not_a_claim_is_invalid(body: dict[str, object]) -> None:
    # even signed with the claim key (a key leak would be needed), a malformed body is a 400, never a 500
    with pytest.raises(InvalidInputError):
        read_claim_token(sign_body(body, claim_key(SECRET)), SECRET, T0)


def test_the_claim_key_is_derived_not_the_tracked_link_secret() -> None:
    assert claim_key(SECRET) != SECRET and len(claim_key(SECRET)) == 64
    assert claim_key(SECRET) == claim_key(SECRET) != claim_key("other")


# ---- the page -----------------------------------------------------------------------------------------------------


def _offer(**kind: object) -> Offer:
    raw = {
        "brand_id": "demo-brand",
        "offer_id": "o1",
        "name": '<script>alert("x")</script> 好评红包',
        "currency": "CNY",
    }
    return Offer.model_validate({**raw, "validity": {"days": 7}, **kind})


def test_the_page_is_self_contained_bilingual_and_escapes_what_it_shows() -> None:
    page = pages.page(200, "ready", "领取", "Claim", claim_page._offer_box(_offer(red_packet={"amount_minor": 888})))
    assert page.status == 200
    html = page.html
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "¥8.88" in html and "cash red packet" in html and "现金红包" in html
    # nothing is loaded from elsewhere: no src, no link, no url(...), no http(s) reference
    for outside in ("src=", "<link", "url(", "http://", "https://", "@import"):
        assert outside not in html, outside
    assert 'name="viewport"' in html and html.startswith("<!doctype html>")
    csp = claim_page.HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        (
            {"coupon": {"amount_off_minor": 5000, "threshold_minor": 30000}},
            "满¥300.00减¥50.00 · ¥50.00 off orders over",
        ),
        ({"coupon": {"percent_off": 20, "max_discount_minor": 3000}}, "8折（最高减¥30.00） · 20% off, up to ¥30.00"),
        ({"points": {"points": 1200, "program": "app"}, "unit_cost_minor": 120}, "1,200 积分 · 1,200 points"),
        ({"gift": {"sku": "MUG", "name": "杯子"}, "unit_cost_minor": 900}, "赠品：杯子 · Gift: 杯子"),
    ],
)
def test_each_kind_of_offer_says_what_it_gives_in_both_languages(kind: dict[str, object], shown: str) -> None:
    assert shown in claim_page._value_text(_offer(**kind))
