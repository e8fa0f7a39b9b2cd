"""Console users sign in to the local server and call the same API with their ID token: the scopes and the brand/store
scope of the users file are enforced by every route as an API key's are. The console's pages are served as files of
the package, nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdp.org import ScopeRef
from cdp_local.console_site import console_request
from cdp_local.console_users import ConsoleUser, UsersFile, hash_password, save_users
from cdp_local.runtime import LocalRuntime

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "users.json"
    hashed = hash_password(PASSWORD)
    users = UsersFile(
        users={
            "mei": ConsoleUser(password=hashed, name="梅", locale="zh", scopes=["profiles:read", "campaigns:read"]),
            "till": ConsoleUser(
                password=hashed, scopes=["profiles:read"], scope=ScopeRef(brand_id="demo-brand", store_id="sh01")
            ),
            "outlet": ConsoleUser(password=hashed, scopes=["campaigns:read"], scope=ScopeRef(brand_id="demo-outlet")),
        }
    )
    save_users(path, users)
    return path


def _sign_in(users_file: Path, username: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"username": username, "password": password}).encode()
    status, _, payload = console_request("POST", "/console/sign-in", body, users_file)
    return status, json.loads(payload)


def _call(runtime: LocalRuntime, path: str, token: str) -> tuple[int, dict[str, Any]]:
    response = runtime.http("GET", path, b"", {"authorization": f"Bearer {token}"})
    return response.status, json.loads(response.body or b"{}")


def test_a_user_signs_in_and_is_refused_alike_for_a_wrong_password_or_an_unknown_name(users_file: Path) -> None:
    status, answer = _sign_in(users_file, "mei")
    assert status == 200 and answer["locale"] == "zh" and answer["name"] == "梅" and answer["expires_in"] == 3600
    assert _sign_in(users_file, "mei", "wrong password")[1] == _sign_in(users_file, "nobody")[1]
    assert _sign_in(users_file, "mei", "wrong password")[0] == 401
    status, _, payload = console_request("POST", "/console/sign-in", b'{"username": ""}', users_file)
    assert status == 400 and json.loads(payload)["field"] == "username"
    assert console_request("POST", "/console/sign-in", b"not json", users_file)[0] == 400


def test_the_token_carries_the_users_scopes_to_every_route(runtime: LocalRuntime, users_file: Path) -> None:
    mei = _sign_in(users_file, "mei")[1]["id_token"]
    # campaigns:read, every brand: the campaign list answers
    assert _call(runtime, "/v1/campaigns?brand_id=demo-brand", mei)[0] == 200
    # no offers:read: a 403 naming the scope
    status, answer = _call(runtime, "/v1/offers?brand_id=demo-brand", mei)
    assert status == 403 and "offers:read" in answer["message"] and "console:mei" in answer["message"]
    # a user of another brand is kept to it
    outlet = _sign_in(users_file, "outlet")[1]["id_token"]
    assert _call(runtime, "/v1/campaigns?brand_id=demo-brand", outlet)[0] in (403, 404)
    # a tampered or foreign token is a 401, never a caller
    assert _call(runtime, "/v1/campaigns?brand_id=demo-brand", mei[:-6] + "AAAAAA")[0] == 401


def test_a_store_users_token_sees_only_its_store(runtime: LocalRuntime, users_file: Path, post_events: Any) -> None:
    phone = "13700137111"
    props = {
        "order_id": "console-o1",
        "lines": [{"sku": "CAKE", "category": "cake", "quantity": 1, "unit_price_minor": 1000}],
        "total_minor": 1000,
        "currency": "CNY",
        "fulfilment": "offline",
    }
    event = {
        "event_id": "console-store-view-1",
        "event_type": "order_placed",
        "source": "pos",
        "brand_id": "demo-brand",
        "store_id": "bj02",  # another store than the user's sh01
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": props,
    }
    response, report = post_events(event)
    assert response.status == 202 and report.dead_lettered == 0
    admin = {"x-api-key": runtime.admin_key}
    found = runtime.http("GET", f"/v1/profiles/by-identifier/phone/{phone}?brand_id=demo-brand", b"", admin)
    assert found.status == 200
    person = json.loads(found.body)["person_id"]
    till = _sign_in(users_file, "till")[1]["id_token"]
    # the person's only facts are of store bj02: to a user of sh01 they are nobody
    assert _call(runtime, f"/v1/profiles/{person}", till)[0] == 404


def test_the_console_is_files_of_the_package_and_nothing_else(users_file: Path) -> None:
    assert console_request("GET", "/", b"", users_file)[:2] == (302, console_request("GET", "/", b"", users_file)[1])
    assert console_request("GET", "/", b"", users_file)[1]["location"] == "/console/"
    status, headers, body = console_request("GET", "/console/config.json", b"", users_file)
    assert status == 200 and json.loads(body)["auth"]["kind"] == "local"
    assert "default-src 'self'" in headers["content-security-policy"]
    for sneaky in ("/console/../console_users.py", "/console/__init__.py", "/console/.hidden", "/console/%2e%2e/x"):
        assert console_request("GET", sneaky, b"", users_file)[0] == 404, sneaky
    assert console_request("DELETE", "/console/index.html", b"", users_file)[0] == 405
