"""API keys with permission and hierarchy scopes (backward-compatible keyring format), and request parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp.app.profile_api import MergeRequest, ProfileEditRequest, identifier_key, parse_body, parse_limit
from cdp.errors import AuthenticationError, ForbiddenError, InvalidInputError
from cdp.ingest.auth import READ_PROFILES_SCOPE, authenticate, authorize
from cdp.ingest.aws import parse_keys
from cdp.ingest.ports import ApiClient, ApiKeyring
from cdp.org import ScopeRef

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class _Keyring(ApiKeyring):
    def __init__(self, clients: dict[str, ApiClient]) -> None:
        self._clients = clients

    def clients(self) -> dict[str, ApiClient]:
        return self._clients

    def hmac_secrets(self) -> dict[str, str]:
        return {}


def test_the_original_key_format_still_parses_and_sees_everything() -> None:
    # Given a secret written before hierarchy scopes existed, and one with a store scope
    clients = parse_keys(
        {
            "old": {"client": "pos", "scopes": ["events:write"]},
            "store": {"client": "sh01", "scopes": ["profiles:read"], "scope": {"brand_id": "b", "store_id": "sh01"}},
        }
    )
    # Then the old key keeps its scopes and no hierarchy limit; the new one carries its place
    assert clients["old"] == ApiClient("pos", frozenset({"events:write"}))
    assert clients["old"].org_scope == ScopeRef()
    assert clients["store"].org_scope == ScopeRef(brand_id="b", store_id="sh01")


def test_a_malformed_key_entry_is_left_out_without_locking_out_the_others() -> None:
    clients = parse_keys(
        {
            "typo": {"client": "x", "scopes": ["profiles:read"], "scope": {"shop_id": "sh01"}},
            "good": {"client": "y", "scopes": ["profiles:read"]},
        }
    )
    assert set(clients) == {"good"}


def test_ingest_keeps_its_401_contract_and_the_profile_api_gets_403_for_a_missing_scope() -> None:
    # Given a key that may only read profiles
    keyring = _Keyring({"k": ApiClient("reader", frozenset({READ_PROFILES_SCOPE}))})
    headers = {"x-api-key": "k"}
    # When it posts events, it is refused as before (401: the ingest API's contract)
    with pytest.raises(AuthenticationError, match="lacks scope events:write"):
        authenticate(headers, b"", keyring, NOW)
    # When it is only identified, then checked for another scope, the refusal is a 403 naming the scope
    client = authenticate(headers, b"", keyring, NOW, require=None)
    assert authorize(client, READ_PROFILES_SCOPE) is client
    with pytest.raises(ForbiddenError, match=r"lacks scope identity:merge \(it holds: profiles:read\)"):
        authorize(client, "identity:merge")
    # And an unknown key is still a 401
    with pytest.raises(AuthenticationError, match="unknown API key"):
        authenticate({"x-api-key": "nope"}, b"", keyring, NOW, require=None)


@pytest.mark.parametrize(
    ("kind", "value", "scope", "field"),
    [
        ("fax", "123", None, "type"),
        ("phone", "555", None, "value"),
        ("email", "not-an-email", None, "value"),
        ("wechat_openid", "oABC", None, "identifier_scope"),
        ("phone", "13800138000", "wx", "identifier_scope"),
    ],
)
def test_a_bad_identifier_is_a_400_naming_the_field(kind: str, value: str, scope: str | None, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        identifier_key(kind, value, scope, "CN", ("type", "value", "identifier_scope"))
    assert err.value.location == field


def test_identifiers_are_normalized_with_the_brand_phone_region() -> None:
    assert identifier_key("phone", "138 0013 8000", None, "CN") == "phone:+8613800138000"
    assert identifier_key("phone", "8123 4567", None, "SG") == "phone:+6581234567"
    assert identifier_key("email", "Ann@Example.COM", None, "CN") == "email:ann@example.com"
    assert identifier_key("wechat_openid", "oABC", "WX-OA", "CN") == "wechat_openid:wx-oa:oABC"


def test_bodies_are_validated_naming_the_field() -> None:
    assert parse_body(MergeRequest, b'{"person_ids": ["a", "b"], "reason": "same"}').dry_run is False
    with pytest.raises(InvalidInputError) as err:
        parse_body(MergeRequest, b'{"person_ids": ["a"], "reason": "same"}')
    assert err.value.location == "person_ids"
    with pytest.raises(InvalidInputError) as err:
        parse_body(ProfileEditRequest, b'{"traits": {"member_level": "gold"}}')
    assert err.value.location == "traits.member_level"
    with pytest.raises(InvalidInputError, match="at least one trait or one consent"):
        parse_body(ProfileEditRequest, b"{}")
    with pytest.raises(InvalidInputError) as err:
        parse_body(ProfileEditRequest, None)
    assert err.value.location == "body"
    edit = parse_body(ProfileEditRequest, b'{"consent": {"sms": false}, "traits": {"city": "Shanghai"}}')
    assert edit.consent and edit.traits.city == "Shanghai"


def test_page_size_is_bounded() -> None:
    assert parse_limit(None) == 50 and parse_limit("7") == 7
    for bad in ("0", "201", "ten"):
        with pytest.raises(InvalidInputError) as err:
            parse_limit(bad)
        assert err.value.location == "limit"
