"""The settings page in a real browser: an administrator creates an API key (shown once, with a warning and a copy
button), which works at once against the API, then revokes it; refusals of the API show next to their field; the
administrator adds a console user, who signs in at once, and disables them. Sources are listed without secrets.

It changes the shared demo's settings only: a throwaway key (revoked at the end) and a user of its own."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from cdp.access.models import key_id
from cdp_local.runtime.environment import LOCAL_SOURCES
from tests.browser.conftest import ADMIN, Site
from tests.browser.steps import active, sign_in, visit

NEW_USER = ("lin-settings", "lin-console-pw-1", "Lin Wei")


def _post_event(site: Site, key: str) -> int:
    event = {
        "event_id": f"browser-settings-{uuid.uuid4().hex[:10]}",
        "event_type": "identify",
        "source": "app",
        "brand_id": site.brand,
        "occurred_at": "2026-11-02T10:00:00+08:00",
        "identifiers": [{"type": "email", "value": f"bs-{uuid.uuid4().hex[:8]}@example.cn"}],
    }
    headers = {"content-type": "application/json", "x-api-key": key}
    return site.runtime.http("POST", "/v1/events", json.dumps(event).encode(), headers).status


def _sign_out(page: Any) -> None:
    page.click(".topbar button:has-text('Sign out')")
    page.wait_for_selector("#username")


def test_an_administrator_creates_a_key_sees_it_once_uses_it_and_revokes_it(
    page: Any, site: Site, screenshots: Path
) -> None:
    # Given the administrator signed in, on the settings page (the last entry of the navigation)
    sign_in(page, site, ADMIN)
    assert page.locator("nav a").last.get_attribute("href") == "#/settings"
    visit(page, "#/settings", "settings")
    # Then every key is listed by its fingerprint, as the API lists them, and no key appears on the page
    listed = {k["key_id"] for k in site.api("/v1/admin/api-keys")["keys"]}
    shown = set(page.eval_on_selector_all("#settings-keys-list [data-key-id]", "els => els.map(e => e.dataset.keyId)"))
    assert shown == listed
    text = page.inner_text("main")
    assert site.runtime.admin_key not in text and site.runtime.api_key not in text

    # When a key is asked for without a scope / Then the form says so next to the scopes
    page.fill("#settings-key-client", "browser-pos")
    page.click("[data-action='create-key']")
    assert page.get_attribute("#settings-key-scopes", "aria-invalid") == "true"
    assert page.inner_text("#settings-key-scopes-error")
    # When the store is one the brand does not have / Then the API's refusal shows next to the store field
    page.check("#settings-key-scopes-events-write")
    page.fill("#settings-key-brand", site.brand)
    page.fill("#settings-key-store", "no-such-store")
    page.click("[data-action='create-key']")
    page.wait_for_selector("#settings-key-store[aria-invalid='true']")
    assert "no-such-store" in page.inner_text("#settings-key-store-error")
    assert page.get_attribute("#settings-key-scopes", "aria-invalid") is None

    # When the store is left out and the key created
    page.fill("#settings-key-store", "")
    page.click("[data-action='create-key']")
    page.wait_for_selector("#settings-new-key")
    # Then it is shown once, with a warning and a copy button, and the panel has the focus
    new_key = page.input_value("#settings-new-key")
    created_id = key_id(new_key)
    assert "only this once" in page.inner_text("#settings-new-key-warning")
    assert created_id in page.inner_text("#settings-new-key-warning")
    assert active(page)["id"] == "settings-new-key-panel"
    page.click("[data-action='copy-key']")
    page.wait_for_selector("#settings-copy-status:not(:empty)")
    # And the list has it by its fingerprint, made by the signed-in user
    page.wait_for_selector(f"#settings-keys-list [data-key-id='{created_id}']")
    (entry,) = [k for k in site.api("/v1/admin/api-keys")["keys"] if k["key_id"] == created_id]
    assert entry["created_by"] == f"console:{ADMIN[0]}" and entry["scope"]["brand_id"] == site.brand
    # And it works at once against the API
    assert _post_event(site, new_key) == 202
    # When the panel is closed / Then the key is nowhere on the page any more
    page.click("[data-action='hide-key']")
    assert page.locator("#settings-new-key").count() == 0
    assert new_key not in page.content()

    # When it is revoked, confirmed from the keyboard in the dialog (Cancel has the focus first)
    page.click(f"[data-action='revoke'][data-key-id='{created_id}']")
    page.wait_for_selector("#settings-confirm[open]")
    assert active(page)["text"] == "Cancel"
    page.keyboard.press("Tab")
    assert active(page)["text"] == "Revoke"
    page.keyboard.press("Enter")
    page.wait_for_selector("#settings-keys-feedback:not(:empty)")
    # Then it is gone from the list and refused by the API
    page.wait_for_selector(f"#settings-keys-list [data-key-id='{created_id}']", state="detached")
    assert _post_event(site, new_key) == 401
    # And the sources are listed with what they accept, none of their secrets on the page
    page.wait_for_selector("#settings-sources table")
    sources = page.inner_text("#settings-sources")
    assert "POST /v1/webhooks/pos/demo-pos" in sources
    secrets = ["local-pos-secret", "local-shopify-secret", "local-wechat-token", site.runtime.write_key]
    assert not [s for s in secrets if s in page.content()]
    assert set(LOCAL_SOURCES["shops"]) <= set(sources.split())  # type: ignore[arg-type]
    page.screenshot(path=str(screenshots / "settings.png"), full_page=True)


def test_an_administrator_adds_a_console_user_who_signs_in_at_once_and_disables_them(page: Any, site: Site) -> None:
    # Given the administrator on the settings page
    sign_in(page, site, ADMIN)
    visit(page, "#/settings", "settings")
    # When a user name the API refuses is given / Then its message shows next to the user name
    page.fill("#settings-user-name", "has space")
    page.fill("#settings-user-password", NEW_USER[1])
    page.click("[data-action='add-user']")
    page.wait_for_selector("#settings-user-name[aria-invalid='true']")
    assert page.inner_text("#settings-user-name-error")
    # When an analyst of the demo brand is added
    page.fill("#settings-user-name", NEW_USER[0])
    page.fill("#settings-user-display", NEW_USER[2])
    page.select_option("#settings-user-role", "analyst")
    page.fill("#settings-user-brand", site.brand)
    page.fill("#settings-user-password", NEW_USER[1])
    page.click("[data-action='add-user']")
    page.wait_for_selector(f"#settings-users-list [data-action='disable'][data-username='{NEW_USER[0]}']")
    assert NEW_USER[0] in page.inner_text("#settings-users-feedback")
    (user,) = [u for u in site.api("/v1/admin/console-users")["users"] if u["username"] == NEW_USER[0]]
    assert user["enabled"] and user["scope"]["brand_id"] == site.brand and "analytics:read" in user["scopes"]
    # And the administrator cannot disable themselves from the page
    assert page.locator(f"[data-action='disable'][data-username='{ADMIN[0]}']").count() == 0

    # When the new user signs in / Then at once, to home, without the settings entry
    _sign_out(page)
    sign_in(page, site, NEW_USER)
    assert page.inner_text(".user-name") == NEW_USER[2]
    assert page.locator("nav a[href='#/settings']").count() == 0

    # When the administrator disables the user
    _sign_out(page)
    sign_in(page, site, ADMIN)
    visit(page, "#/settings", "settings")
    page.click(f"[data-action='disable'][data-username='{NEW_USER[0]}']")
    page.wait_for_selector("#settings-confirm[open]")
    page.click("#settings-confirm [data-confirm='go']")
    page.wait_for_selector("#settings-users-feedback:not(:empty)")
    # Then the user is listed as disabled and can no longer sign in
    (user,) = [u for u in site.api("/v1/admin/console-users")["users"] if u["username"] == NEW_USER[0]]
    assert user["enabled"] is False
    _sign_out(page)
    page.fill("#username", NEW_USER[0])
    page.fill("#password", NEW_USER[1])
    page.press("#password", "Enter")
    page.wait_for_selector("#sign-in-error:not(:empty)")
