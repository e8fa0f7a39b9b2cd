"""Per-person inbox tokens (cdp.channels.inbox_tokens): what one brand's backend issues reads one person's inbox of
that brand, until it expires; a tampered token, another brand's, another secret's or another kind of signed token is
refused, and so is anything that is not a token at all."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.channels.inbox_tokens import (
    InboxToken,
    InboxTokenExpiredError,
    brand_key,
    mint_inbox_token,
    read_inbox_token,
)
from cdp.connectors.redirect import LinkClaims, mint_token, sign_body
from cdp.errors import AuthenticationError
from cdp.offers.claims import ClaimToken, mint_claim_token

SECRET = "the-tracked-link-secret-of-the-sources-document"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
VALID = InboxToken("bakery", "person-1", T0 + timedelta(hours=24))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, Any]:
    payload = token.partition(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _with_payload(token: str, body: dict[str, Any]) -> str:
    """The token's MAC on another payload (what an attacker who edits the JSON sends)."""
    return f"{_b64(json.dumps(body, separators=(',', ':')).encode())}.{token.partition('.')[2]}"


def test_a_token_reads_back_its_brand_person_and_expiry() -> None:
    # Given a token minted for a person of bakery, valid 24 hours
    token = mint_inbox_token(VALID, SECRET)
    # When it is read an hour later / Then it names exactly them, and nothing else in it is personal
    assert read_inbox_token(token, SECRET, T0 + timedelta(hours=1)) == VALID
    assert _payload(token) == {"k": "inbox", "b": "bakery", "p": "person-1", "x": int(VALID.expires_at.timestamp())}


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(days=30)])
def test_a_token_at_or_past_its_expiry_is_refused_as_expired(late: timedelta) -> None:
    token = mint_inbox_token(VALID, SECRET)
    # When it is used at its expiry or later / Then it is an authentication error saying it expired
    with pytest.raises(InboxTokenExpiredError, match="expired") as raised:
        read_inbox_token(token, SECRET, VALID.expires_at + late)
    assert isinstance(raised.value, AuthenticationError)
    assert raised.value.expired_at == VALID.expires_at


@pytest.mark.parametrize(
    "change",
    [
        {"p": "person-2"},  # another person of the same brand
        {"x": int((T0 + timedelta(days=365)).timestamp())},  # a longer life
        {"k": "claim"},
    ],
)
def test_a_token_whose_payload_was_edited_is_refused(change: dict[str, Any]) -> None:
    token = mint_inbox_token(VALID, SECRET)
    # Given the payload edited and the MAC kept
    forged = _with_payload(token, {**_payload(token), **change})
    # Then it is not a token (the MAC no longer matches)
    with pytest.raises(AuthenticationError, match="invalid inbox token"):
        read_inbox_token(forged, SECRET, T0)


def test_a_token_with_one_character_of_its_mac_changed_is_refused() -> None:
    token = mint_inbox_token(VALID, SECRET)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AuthenticationError):
        read_inbox_token(flipped, SECRET, T0)


def test_another_brands_token_reads_nothing_of_this_brand() -> None:
    # Given a genuine token of brand outlet for its person, and the brands' own keys
    outlet = mint_inbox_token(InboxToken("outlet", "person-1", VALID.expires_at), SECRET)
    assert brand_key(SECRET, "outlet") != brand_key(SECRET, "bakery")
    # When its payload is changed to name bakery (the same person id) / Then it is refused: bakery's key differs
    forged = _with_payload(outlet, {**_payload(outlet), "b": "bakery"})
    with pytest.raises(AuthenticationError, match="invalid inbox token"):
        read_inbox_token(forged, SECRET, T0)
    # And unchanged it names its own brand only
    assert read_inbox_token(outlet, SECRET, T0).brand_id == "outlet"


def test_a_token_made_under_another_secret_is_refused() -> None:
    token = mint_inbox_token(VALID, "another deployment's tracked-link secret")
    with pytest.raises(AuthenticationError):
        read_inbox_token(token, SECRET, T0)


def test_a_tracked_link_token_or_a_claim_link_token_is_not_an_inbox_token() -> None:
    link = mint_token(LinkClaims("m1", "sms", "https://shop.example/x", "phone:+8613900000000", "bakery"), SECRET)
    claim = mint_claim_token(ClaimToken("bakery", "offer", "person-1", "ref", VALID.expires_at), SECRET)
    # the right key, the right fields, but another kind
    other_kind = sign_body(
        {"k": "claim", "b": "bakery", "p": "person-1", "x": 4_000_000_000}, brand_key(SECRET, "bakery")
    )
    for token in (link, claim, other_kind):
        with pytest.raises(AuthenticationError):
            read_inbox_token(token, SECRET, T0)


@pytest.mark.parametrize(
    "body",
    [
        {"k": "inbox", "b": "bakery", "p": "", "x": 4_000_000_000},
        {"k": "inbox", "b": "bakery", "p": "p" * 129, "x": 4_000_000_000},
        {"k": "inbox", "b": "bakery", "p": {"$ne": 1}, "x": 4_000_000_000},
        {"k": "inbox", "b": "bakery", "p": "person-1", "x": True},
        {"k": "inbox", "b": "bakery", "p": "person-1", "x": 4e9},
        {"k": "inbox", "b": "bakery", "p": "person-1", "x": -1},
        {"k": "inbox", "b": "bakery", "p": "person-1", "x": 10**30},
        {"k": "inbox", "b": "bakery", "p": "person-1"},
    ],
)
def test_genuinely_signed_bodies_that_are_not_inbox_tokens_are_refused(body: dict[str, Any]) -> None:
    # Given a body signed with the brand's own key (only we could make it) whose fields are wrong
    token = sign_body(body, brand_key(SECRET, "bakery"))
    with pytest.raises(AuthenticationError, match="invalid inbox token"):
        read_inbox_token(token, SECRET, T0)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        ".",
        "a.b",
        "Bearer x",
        "%00",
        "🧧.🧧",
        "x" * 5000,
        "A" * 1000 + "." + "B" * 22,
        _b64(b"[" * 900) + ".AAAA",
        _b64(b'{"b": ["bakery"]}') + ".AAAA",
        _b64(b'{"b": "' + b"b" * 200 + b'"}') + ".AAAA",
        _b64(b"\xff\xfe") + ".AAAA",
    ],
)
def test_what_is_not_a_token_is_an_authentication_error(token: str) -> None:
    with pytest.raises(AuthenticationError):
        read_inbox_token(token, SECRET, T0)
