"""Settings (cdp.access) without AWS: keys are named by fingerprints, never themselves; every refusal names its
field; a key cannot revoke itself nor a user disable themselves; nobody grants what they do not hold; only an
administrator of the whole deployment manages any of it; sources are listed without their secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from cdp.access import service
from cdp.access.models import (
    ROLES,
    ApiKeyRequest,
    ConsoleUserInfo,
    ConsoleUserRequest,
    NewConsoleUser,
    SettingsConflictError,
    key_id,
)
from cdp.access.ports import KeysEdit, KeyStore, UserDirectory
from cdp.access.users_file import UsersFileDirectory, load_users, password_matches
from cdp.connectors.sources import parse_sources
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.auth import SCOPES, SETTINGS_ADMIN_SCOPE
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef, load_org

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
ADMIN = ApiClient("ops-admin", frozenset(SCOPES))
ADMIN_KEY = "the-admins-own-key"


class MemoryKeyStore(KeyStore):
    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys
        self.writes = 0

    def entries(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.keys))

    def change(self, edit: KeysEdit) -> None:
        edit(self.keys)
        self.writes += 1


class MemoryUsers(UserDirectory):
    kind = "file"

    def __init__(self) -> None:
        self.added: dict[str, NewConsoleUser] = {}
        self.disabled: set[str] = set()

    def users(self) -> list[ConsoleUserInfo]:
        return []

    def create(self, user: NewConsoleUser) -> ConsoleUserInfo:
        self.added[user.username] = user
        return ConsoleUserInfo(username=user.username, scopes=list(user.scopes), scope=user.scope, enabled=True)

    def disable(self, username: str) -> None:
        if username not in self.added:
            raise NotFoundError(username)
        self.disabled.add(username)


@pytest.fixture
def org() -> OrgDirectory:
    return load_org()


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore({ADMIN_KEY: {"client": "ops-admin", "scopes": list(SCOPES)}})


def test_the_settings_scope_is_a_known_scope_and_the_admin_role_holds_it() -> None:
    assert SETTINGS_ADMIN_SCOPE == "settings:admin"
    assert SETTINGS_ADMIN_SCOPE in SCOPES
    assert set(ROLES["admin"]) == set(SCOPES)
    assert all(SETTINGS_ADMIN_SCOPE not in scopes for role, scopes in ROLES.items() if role != "admin")


def test_a_created_key_is_shown_once_and_listed_by_a_fingerprint_that_is_never_the_key(
    store: MemoryKeyStore, org: OrgDirectory
) -> None:
    # Given a request for a store's read key
    request = ApiKeyRequest(client="till-sh01", scopes=["profiles:read"], scope=ScopeRef(brand_id="demo-brand"))
    # When it is created
    created = service.create_key(store, request, org, ADMIN, NOW)
    # Then the answer holds the key and its fingerprint, which is not the key nor a part of it
    assert created.api_key in store.keys and store.writes == 1
    assert created.key_id == key_id(created.api_key) and len(created.key_id) == 12
    assert created.key_id not in created.api_key and created.api_key not in created.key_id
    assert created.created_at == NOW and created.created_by == "ops-admin"
    # And the list names every key by its fingerprint only: no key appears anywhere in it
    listed = service.list_keys(store)
    text = listed.model_dump_json()
    assert ADMIN_KEY not in text and created.api_key not in text
    assert {k.key_id for k in listed.keys} == {key_id(ADMIN_KEY), created.key_id}
    assert listed.takes_effect_within_seconds == 300


def test_fingerprints_never_equal_their_keys() -> None:
    for key in ("a", "x" * 12, "cdp_abc", "0123456789ab"):
        assert key_id(key) != key and len(key_id(key)) == 12


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client": "x", "scopes": ["profiles:read", "profiles:rule"]}, "scopes.1"),
        ({"client": "x", "scopes": []}, "scopes"),
        ({"client": "", "scopes": ["profiles:read"]}, "client"),
        ({"client": "x", "scopes": ["profiles:read"], "scope": {"brand": "demo-brand"}}, "scope.brand"),
        ({"client": "x", "scopes": ["profiles:read"], "extra": 1}, "extra"),
    ],
)
def test_a_malformed_key_request_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ApiKeyRequest.model_validate(body)
    assert ".".join(map(str, caught.value.errors()[0]["loc"])) == field


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        (ScopeRef(brand_id="no-such-brand"), "scope.brand_id"),
        (ScopeRef(brand_id="demo-brand", store_id="zz99"), "scope.store_id"),
        (ScopeRef(brand_id="demo-brand", dealer_id="dealer-bj02", store_id="sh01"), "scope.store_id"),
        (ScopeRef(brand_id="demo-brand", dealer_id="nobody"), "scope.dealer_id"),
        (ScopeRef(store_id="sh01"), "scope.brand_id"),
        (ScopeRef(group_id="other-group"), "scope.group_id"),
        (ScopeRef(group_id="other-group", brand_id="demo-brand"), "scope.group_id"),
        (ScopeRef(brand_id=""), "scope.brand_id"),
    ],
)
def test_an_org_scope_outside_the_org_directory_is_a_400_naming_the_part(
    store: MemoryKeyStore, org: OrgDirectory, scope: ScopeRef, field: str
) -> None:
    request = ApiKeyRequest(client="x", scopes=["profiles:read"], scope=scope)
    with pytest.raises(InvalidInputError) as caught:
        service.create_key(store, request, org, ADMIN, NOW)
    assert caught.value.location == field
    assert store.writes == 0


def test_places_of_the_org_directory_are_accepted(org: OrgDirectory) -> None:
    for scope in (
        ScopeRef(),
        ScopeRef(group_id="demo-group"),
        ScopeRef(brand_id="demo-outlet"),
        ScopeRef(brand_id="demo-brand", dealer_id="dealer-sh01", store_id="sh01"),
        ScopeRef(brand_id="demo-outlet", store_id="any-store"),  # a brand that lists no stores cannot say
    ):
        service.check_org_scope(scope, org)


def test_a_key_cannot_revoke_itself_and_an_unknown_id_is_a_404(store: MemoryKeyStore) -> None:
    other = "someone-elses-key"
    store.keys[other] = {"client": "pos", "scopes": ["events:write"]}
    # When the administrator's key revokes itself / Then 409, and nothing is written
    with pytest.raises(SettingsConflictError):
        service.revoke_key(store, key_id(ADMIN_KEY), caller_key_id=key_id(ADMIN_KEY))
    # And an id that names no key (or is no fingerprint at all) is a 404
    for wanted in ("000000000000", "not-a-key-id", key_id(other)[:11]):
        with pytest.raises(NotFoundError):
            service.revoke_key(store, wanted, caller_key_id=key_id(ADMIN_KEY))
    assert store.writes == 0
    # When it revokes another key / Then that key is gone and the answer names its client, not the key
    revoked = service.revoke_key(store, key_id(other), caller_key_id=key_id(ADMIN_KEY))
    assert revoked.client == "pos" and other not in store.keys and other not in revoked.model_dump_json()
    # And a console user (no key) may revoke any key
    service.revoke_key(store, key_id(ADMIN_KEY), caller_key_id=None)
    assert store.keys == {}


def test_only_an_administrator_of_the_whole_deployment_manages_settings() -> None:
    service.authorize_settings(ADMIN)
    with pytest.raises(ForbiddenError, match="settings:admin"):
        service.authorize_settings(ApiClient("ops", frozenset({"operations:replay"})))
    brand_admin = ApiClient("brand-admin", frozenset(SCOPES), ScopeRef(brand_id="demo-brand"))
    with pytest.raises(ForbiddenError, match="no org scope"):
        service.authorize_settings(brand_admin)


def test_nobody_grants_a_scope_they_do_not_hold(store: MemoryKeyStore, org: OrgDirectory) -> None:
    settings_only = ApiClient("settings-only", frozenset({SETTINGS_ADMIN_SCOPE, "profiles:read"}))
    request = ApiKeyRequest(client="x", scopes=["profiles:read", "privacy:erase"])
    with pytest.raises(ForbiddenError, match="privacy:erase"):
        service.create_key(store, request, org, settings_only, NOW)
    users = MemoryUsers()
    with pytest.raises(ForbiddenError, match="campaigns:write"):
        service.add_user(users, _user_request(role="marketer"), org, settings_only)
    assert store.writes == 0 and not users.added


def _user_request(**changes: Any) -> ConsoleUserRequest:
    body = {"username": "lin", "password": "a long password", "role": "analyst", **changes}
    return ConsoleUserRequest.model_validate(body)


def test_a_console_user_gets_the_roles_scopes_plus_those_named(org: OrgDirectory) -> None:
    users = MemoryUsers()
    request = _user_request(scopes=["campaigns:approve"], scope={"brand_id": "demo-brand"})
    service.add_user(users, request, org, ADMIN)
    added = users.added["lin"]
    assert set(added.scopes) == {*ROLES["analyst"], "campaigns:approve"}
    assert added.scope == ScopeRef(brand_id="demo-brand")
    # And neither a role nor a scope is a 400 on `role`; a store outside the brand is a 400 on scope.store_id
    with pytest.raises(InvalidInputError) as caught:
        service.add_user(users, _user_request(role=None, username="x"), org, ADMIN)
    assert caught.value.location == "role"
    with pytest.raises(InvalidInputError) as caught:
        service.add_user(users, _user_request(scope={"brand_id": "demo-brand", "store_id": "zz"}), org, ADMIN)
    assert caught.value.location == "scope.store_id"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"password": "short"}, "password"),
        ({"username": "has space"}, "username"),
        ({"username": ""}, "username"),
        ({"role": "owner"}, "role"),
        ({"scopes": ["events:write", "nope"]}, "scopes.1"),
        ({"locale": "fr"}, "locale"),
    ],
)
def test_a_malformed_user_request_names_the_field_and_never_echoes_the_password(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _user_request(**changes)
    error = caught.value.errors(include_url=False)[0]
    assert ".".join(map(str, error["loc"])) == field
    assert "short" not in error["msg"]


def test_a_user_cannot_disable_themselves(org: OrgDirectory) -> None:
    users = MemoryUsers()
    service.add_user(users, _user_request(), org, ADMIN)
    with pytest.raises(SettingsConflictError):
        service.disable_user(users, "lin", ApiClient("console:lin", frozenset(SCOPES)))
    with pytest.raises(NotFoundError):
        service.disable_user(users, "nobody", ADMIN)
    assert service.disable_user(users, "lin", ADMIN).enabled is False and users.disabled == {"lin"}


def test_the_users_file_directory_adds_users_who_can_sign_in_and_disables_them(tmp_path: Any) -> None:
    # Given an empty users file
    directory = UsersFileDirectory(tmp_path / "users.json")
    user = NewConsoleUser(
        username="lin",
        name="Lin",
        scopes=("profiles:read",),
        scope=ScopeRef(brand_id="demo-brand"),
        locale="zh",
        password=SecretStr("a long password"),
    )
    # When a user is added / Then the file holds a scrypt hash of the password (never the password), enabled
    directory.create(user)
    stored = load_users(tmp_path / "users.json").users["lin"]
    assert password_matches("a long password", stored.password) and "a long password" not in stored.password
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(SettingsConflictError):
        directory.create(user)
    # When disabled / Then still listed, not enabled
    directory.disable("lin")
    (listed,) = directory.users()
    assert listed.username == "lin" and listed.enabled is False and listed.locale == "zh"


def test_sources_are_listed_without_any_secret() -> None:
    # Given a sources document full of secrets
    write_key = "wk-very-secret-write-key"
    secrets = ["wk-very-secret-write-key", "oa-token-123", "mp-secret-456", "shop-secret-789", "tmall-app-secret"]
    document = {
        "write_keys": {write_key: {"brand_id": "demo-brand", "channel": "app"}},
        "wechat": {
            "wx-oa": {"brand_id": "demo-brand", "kind": "official_account", "token": "oa-token-123"},
            "wx-mp": {"brand_id": "demo-brand", "kind": "mini_program", "secret": "mp-secret-456"},
        },
        "pos": {"vendor": {"brand_id": "demo-brand", "store_id": "sh01", "secret": "shop-secret-789"}},
        "shops": {
            "tm": {"brand_id": "demo-brand", "platform": "tmall", "app_key": "k", "app_secret": "tmall-app-secret"}
        },
    }
    # When listed
    listed = service.list_sources(parse_sources(document))
    text = listed.model_dump_json()
    # Then no secret appears, the write key is named by its fingerprint, and each says what it accepts
    assert not [s for s in secrets if s in text]
    by_kind = {s.kind: s for s in listed.sources}
    assert by_kind["write_key"].source_id == key_id(write_key)
    assert "POST /v1/track" in by_kind["write_key"].accepts
    assert by_kind["pos"].store_id == "sh01" and by_kind["pos"].accepts == ["POST /v1/webhooks/pos/vendor"]
    assert by_kind["shop"].secrets == ["app_secret"] and by_kind["shop"].detail == "tmall"
    mini = next(s for s in listed.sources if s.source_id == "wx-mp")
    assert "POST /v1/wechat/wx-mp/events" in mini.accepts and mini.secrets == ["secret"]
