"""Settings through the local runtime's HTTP path (issue 19): an administrator creates an API key, which works at once
on another route and is refused with a 401 once revoked; adds a console user, who signs in at once and is refused
once disabled; lists the sources without their secrets. A brand's administrator, or a key without settings:admin,
manages none of it (403). Keys, users and sources are never shown by their secrets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from cdp.access.models import key_id
from cdp_local.console_site import console_request
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import LOCAL_SOURCES, STORE_API_KEY
from tests.e2e.conftest import API_KEYS_FILE

BRAND_ADMIN = "e2e-brand-settings-admin-key"  # settings:admin, but only for demo-brand
SETTINGS_ADMIN = "e2e-settings-admin-key"  # settings:admin with few other scopes, every brand
PASSWORD = "a long console password"
ROUTES = [
    ("GET", "/v1/admin/api-keys"),
    ("POST", "/v1/admin/api-keys"),
    ("DELETE", "/v1/admin/api-keys/000000000000"),
    ("GET", "/v1/admin/console-users"),
    ("POST", "/v1/admin/console-users"),
    ("DELETE", "/v1/admin/console-users/nobody"),
    ("GET", "/v1/admin/sources"),
]


def _call(runtime: LocalRuntime, method: str, path: str, key: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    raw = json.dumps(body).encode() if body is not None else b""
    response = runtime.http(method, path, raw, headers)
    return response.status, json.loads(response.body or b"{}")


def _identify(brand: str = "demo-brand") -> dict[str, Any]:
    return {
        "event_id": f"settings-{uuid.uuid4().hex[:12]}",
        "event_type": "identify",
        "source": "app",
        "brand_id": brand,
        "occurred_at": "2026-11-02T10:00:00+08:00",
        "identifiers": [{"type": "email", "value": f"s-{uuid.uuid4().hex[:8]}@example.cn"}],
    }


def _sign_in(runtime: LocalRuntime, username: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
    """Sign in as the local server does: from the users file the operations function manages."""
    assert runtime.console_users_file is not None
    body = json.dumps({"username": username, "password": password}).encode()
    status, _, payload = console_request("POST", "/console/sign-in", body, runtime.console_users_file)
    return status, json.loads(payload)


def test_a_created_key_works_at_once_on_another_route_and_a_revoked_one_gets_401(runtime: LocalRuntime) -> None:
    # Given the administrator creates a writer key for demo-brand
    request = {"client": "e2e-pos", "scopes": ["events:write"], "scope": {"brand_id": "demo-brand"}}
    status, created = _call(runtime, "POST", "/v1/admin/api-keys", runtime.admin_key, request)
    assert status == 201, created
    new_key = created["api_key"]
    assert created["key_id"] == key_id(new_key) and created["created_by"] == "local-admin"
    # When it posts an event at once / Then ingest accepts it (no wait for the keyring's cache)
    status, answer = _call(runtime, "POST", "/v1/events", new_key, _identify())
    assert status == 202, answer
    # And within its scope only
    assert _call(runtime, "POST", "/v1/events", new_key, _identify("demo-outlet"))[0] == 400
    # And the list names it by its fingerprint; no key appears in the list
    status, listed = _call(runtime, "GET", "/v1/admin/api-keys", runtime.admin_key)
    assert status == 200 and created["key_id"] in {k["key_id"] for k in listed["keys"]}
    text = json.dumps(listed)
    file_keys = list(json.loads(API_KEYS_FILE.read_text(encoding="utf-8"))["keys"])
    for secret in [new_key, runtime.admin_key, runtime.api_key, STORE_API_KEY, *file_keys]:
        assert secret not in text
    # When it is revoked / Then the next post with it is a 401, at once
    status, revoked = _call(runtime, "DELETE", f"/v1/admin/api-keys/{created['key_id']}", runtime.admin_key)
    assert status == 200 and revoked == {
        "key_id": created["key_id"],
        "client": "e2e-pos",
        "revoked": True,
        "takes_effect_within_seconds": 300,
    }
    assert _call(runtime, "POST", "/v1/events", new_key, _identify())[0] == 401
    # And revoking it again is a 404
    assert _call(runtime, "DELETE", f"/v1/admin/api-keys/{created['key_id']}", runtime.admin_key)[0] == 404


def test_a_key_cannot_revoke_itself(runtime: LocalRuntime) -> None:
    status, answer = _call(runtime, "DELETE", f"/v1/admin/api-keys/{key_id(runtime.admin_key)}", runtime.admin_key)
    assert status == 409 and "itself" in answer["message"]
    assert _call(runtime, "GET", "/v1/admin/api-keys", runtime.admin_key)[0] == 200  # still in force


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_brand_scoped_admin_or_a_key_without_the_scope_gets_403_and_no_key_401(
    runtime: LocalRuntime, method: str, path: str
) -> None:
    body = {"client": "x", "scopes": ["events:write"]} if method == "POST" else None
    for key in (BRAND_ADMIN, runtime.api_key, STORE_API_KEY):
        status, answer = _call(runtime, method, path, key, body)
        assert status == 403, (key, status, answer)
    assert "no org scope" in _call(runtime, method, path, BRAND_ADMIN, body)[1]["message"]
    assert _call(runtime, method, path, None, body)[0] == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client": "x", "scopes": ["events:write", "events:wrote"]}, "scopes.1"),
        ({"client": "x", "scopes": ["events:write"], "scope": {"brand_id": "no-such-brand"}}, "scope.brand_id"),
        (
            {"client": "x", "scopes": ["events:write"], "scope": {"brand_id": "demo-brand", "store_id": "zz"}},
            "scope.store_id",
        ),
        ({"scopes": ["events:write"]}, "client"),
    ],
)
def test_a_bad_key_request_is_a_400_naming_the_field(runtime: LocalRuntime, body: dict[str, Any], field: str) -> None:
    status, answer = _call(runtime, "POST", "/v1/admin/api-keys", runtime.admin_key, body)
    assert status == 400 and answer["field"] == field, answer


def test_an_administrator_grants_only_scopes_it_holds(runtime: LocalRuntime) -> None:
    request = {"client": "x", "scopes": ["events:write", "privacy:erase"]}
    status, answer = _call(runtime, "POST", "/v1/admin/api-keys", SETTINGS_ADMIN, request)
    assert status == 403 and "privacy:erase" in answer["message"]
    request = {"client": "x", "scopes": ["events:write"]}
    status, created = _call(runtime, "POST", "/v1/admin/api-keys", SETTINGS_ADMIN, request)
    assert status == 201 and created["created_by"] == "settings-admin"
    assert _call(runtime, "DELETE", f"/v1/admin/api-keys/{created['key_id']}", SETTINGS_ADMIN)[0] == 200


def test_a_console_user_added_signs_in_at_once_and_not_once_disabled(runtime: LocalRuntime) -> None:
    username = f"e2e-{uuid.uuid4().hex[:6]}"
    # Given the administrator adds a marketer of demo-brand
    request = {
        "username": username,
        "name": "测试",
        "role": "marketer",
        "scope": {"brand_id": "demo-brand"},
        "locale": "zh",
        "password": PASSWORD,
    }
    status, user = _call(runtime, "POST", "/v1/admin/console-users", runtime.admin_key, request)
    assert status == 201, user
    assert user["enabled"] and "campaigns:write" in user["scopes"] and "password" not in user
    assert _call(runtime, "POST", "/v1/admin/console-users", runtime.admin_key, request)[0] == 409
    # When the user signs in / Then the token works on the API with the user's scopes and brand
    status, signed = _sign_in(runtime, username)
    assert status == 200 and signed["locale"] == "zh"
    bearer = {"authorization": f"Bearer {signed['id_token']}"}
    assert runtime.http("GET", "/v1/campaigns?brand_id=demo-brand", b"", bearer).status == 200
    assert runtime.http("GET", "/v1/campaigns?brand_id=demo-outlet", b"", bearer).status == 403
    assert runtime.http("GET", "/v1/admin/console-users", b"", bearer).status == 403  # no settings:admin
    # And the list shows the user, never a password or its hash
    status, listed = _call(runtime, "GET", "/v1/admin/console-users", runtime.admin_key)
    assert status == 200 and listed["directory"] == "file"
    assert username in {u["username"] for u in listed["users"]}
    assert PASSWORD not in json.dumps(listed) and "scrypt" not in json.dumps(listed)
    # When disabled / Then the sign-in is refused as a wrong password would be, and the user stays listed
    status, disabled = _call(runtime, "DELETE", f"/v1/admin/console-users/{username}", runtime.admin_key)
    assert status == 200 and disabled["enabled"] is False
    assert _sign_in(runtime, username)[0] == 401
    (found,) = [
        u
        for u in _call(runtime, "GET", "/v1/admin/console-users", runtime.admin_key)[1]["users"]
        if u["username"] == username
    ]
    assert found["enabled"] is False
    assert _call(runtime, "DELETE", "/v1/admin/console-users/nobody-here", runtime.admin_key)[0] == 404


def test_an_admin_user_manages_settings_with_the_token_but_cannot_disable_themselves(runtime: LocalRuntime) -> None:
    username = f"e2e-admin-{uuid.uuid4().hex[:6]}"
    request = {"username": username, "role": "admin", "password": PASSWORD}
    assert _call(runtime, "POST", "/v1/admin/console-users", runtime.admin_key, request)[0] == 201
    token = _sign_in(runtime, username)[1]["id_token"]
    bearer = {"authorization": f"Bearer {token}"}
    assert runtime.http("GET", "/v1/admin/api-keys", b"", bearer).status == 200
    answer = runtime.http("DELETE", f"/v1/admin/console-users/{username}", b"", bearer)
    assert answer.status == 409, answer.body
    # And a console user revokes keys (no key of its own to protect)
    body = json.dumps({"client": "by-console", "scopes": ["events:write"]}).encode()
    created = json.loads(
        runtime.http("POST", "/v1/admin/api-keys", body, {**bearer, "content-type": "application/json"}).body
    )
    assert created["created_by"] == f"console:{username}"
    assert runtime.http("DELETE", f"/v1/admin/api-keys/{created['key_id']}", b"", bearer).status == 200


def test_sources_are_listed_with_what_they_accept_and_without_their_secrets(runtime: LocalRuntime) -> None:
    status, listed = _call(runtime, "GET", "/v1/admin/sources", runtime.admin_key)
    assert status == 200
    text = json.dumps(listed)
    secrets = [runtime.write_key, "local-wechat-token", "local-mini-program-secret", "local-mini-program-token"]
    secrets += ["local-shopify-secret", "local-pos-secret", "local-sms-secret", "local-push-secret", "local-redirect"]
    assert not [s for s in secrets if s in text]
    by_id = {s["source_id"]: s for s in listed["sources"]}
    assert by_id[key_id(runtime.write_key)]["kind"] == "write_key"
    assert by_id["demo-pos"]["accepts"] == ["POST /v1/webhooks/pos/demo-pos"]
    assert by_id["wx-local-mp"]["secrets"] == ["token", "secret"]
    assert set(LOCAL_SOURCES["shops"]) <= set(by_id)  # type: ignore[arg-type]
