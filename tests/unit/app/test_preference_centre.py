"""The preference centre (cdp.app.preference_centre, cdp.app.preference_page) on in-memory ports: a person sees their
consent per channel and purpose from their link; saving publishes one canonical consent_changed per consent that
changed (and nothing when nothing did); a one-click unsubscribe withdraws the channel the link came in and names the
message; anything else than the link's own person, a good form or a live link is a page saying so, never an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.app import preference_page
from cdp.app.person_events import EventSink
from cdp.app.preference_centre import PreferenceCentre
from cdp.channels.inbox_tokens import InboxToken, mint_inbox_token
from cdp.channels.lifecycle import receipt_of
from cdp.channels.preference_links import (
    PreferenceLink,
    mint_preference_token,
    preference_url,
    read_preference_token,
)
from cdp.errors import AuthenticationError
from cdp.ingest.events import parse_event
from cdp.profile.models import ConsentState, Profile, apply_event

SECRET = "local-redirect-secret"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=3)


class Events(EventSink):
    def __init__(self, accept: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.accept = accept

    def publish(self, event: dict[str, Any], request_id: str) -> bool:
        self.events.append(event)
        return self.accept


class Profiles:
    def __init__(self, *profiles: Profile) -> None:
        self.by_id = {p.person_id: p for p in profiles}

    def get(self, person_id: str) -> Profile | None:
        found = self.by_id.get(person_id)
        while found is not None and found.merged_into:
            found = self.by_id.get(found.merged_into)
        return found


def person(pid: str = "p1", *identifiers: str, brand: str = "bakery", **changes: Any) -> Profile:
    consent = {
        "email": ConsentState(granted=True, changed_at=T0, source="app"),
        "sms": ConsentState(granted=True, changed_at=T0, source="app"),
    }
    return Profile(
        person_id=pid,
        brand_id=brand,
        created_at=T0,
        updated_at=T0,
        identifiers=list(identifiers or ("phone:+8613900000001", "email:li@example.cn")),
        consent=changes.pop("consent", consent),
        **changes,
    )


def token(pid: str = "p1", channel: str | None = "email", message: str | None = "m-1", **changes: Any) -> str:
    link = PreferenceLink("bakery", pid, changes.get("expires_at", NOW + timedelta(days=30)), channel, message)
    return mint_preference_token(link, changes.get("secret", SECRET))


def centre(*profiles: Profile, events: Events | None = None, secret: str | None = SECRET) -> PreferenceCentre:
    return PreferenceCentre(Profiles(*profiles), lambda: secret, events or Events(), now=lambda: NOW)


def choices(page_html: str) -> set[str]:
    """The boxes ticked on a page."""
    import re

    return set(re.findall(r'name="([a-z]+\.[a-z]+)"[^>]*checked', page_html))


def test_the_link_reads_back_as_the_person_the_channel_and_the_message() -> None:
    text = token()
    assert read_preference_token(text, SECRET, NOW) == PreferenceLink(
        "bakery", "p1", (NOW + timedelta(days=30)).replace(microsecond=0), "email", "m-1"
    )
    assert preference_url("https://api.example.cn/", text) == f"https://api.example.cn/v1/preferences/{text}"


@pytest.mark.parametrize(
    "bad",
    [
        token(secret="another-secret"),
        token()[:-2] + "AA",
        mint_inbox_token(InboxToken("bakery", "p1", NOW + timedelta(days=1)), SECRET),  # another kind, same secret
        "",
        "x" * 5000,
        "not.a-token",
    ],
)
def test_anything_but_a_genuine_preference_link_is_refused(bad: str) -> None:
    with pytest.raises(AuthenticationError):
        read_preference_token(bad, SECRET, NOW)
    page = preference_page.show(centre(person()), bad)
    assert page.status == 400 and "This link is not valid" in page.html


def test_the_page_shows_the_persons_consent_per_channel_and_purpose() -> None:
    page = preference_page.show(centre(person()), token())
    assert page.status == 200
    # marketing is opt-in (e-mail and SMS given); service notices are on unless refused
    assert choices(page.html) == {
        "marketing.email",
        "marketing.sms",
        *(f"service.{c}" for c in ("email", "sms", "wechat", "push", "inapp")),
    }
    assert 'class="from"' in page.html  # the channel the link came in is marked
    for outside in ("src=", "<link", "url(", "<script"):
        assert outside not in page.html


def test_saving_publishes_one_canonical_event_per_consent_that_changed() -> None:
    events = Events()
    c = centre(person(), events=events)
    # When the person unticks SMS offers, ticks WeChat offers and unticks e-mail notices
    form = b"action=save&marketing.email=on&marketing.wechat=on&service.sms=on&service.wechat=on&service.push=on"
    page = preference_page.submit(c, token(), form + b"&service.inapp=on")
    assert page.status == 200 and "Saved" in page.html
    changed = {
        (e["properties"]["channel"], e["properties"]["purpose"], e["properties"]["granted"]) for e in events.events
    }
    assert changed == {("sms", "marketing", False), ("wechat", "marketing", True), ("email", "transactional", False)}
    profile = person()
    for raw in events.events:
        event = parse_event(raw)
        assert event.source.value == "web" and raw["identifiers"] == [{"type": "phone", "value": "+8613900000001"}]
        assert receipt_of(event) is None  # none of them is the e-mail marketing the link came in
        profile = apply_event(profile, event)
    assert not profile.has_consent("sms") and profile.has_consent("wechat") and profile.has_consent("email")
    assert not profile.has_consent("email", purpose="service") and profile.has_consent("sms", purpose="service")
    # And the page shows the choices as saved
    assert "marketing.sms" not in choices(page.html) and "marketing.wechat" in choices(page.html)


def test_saving_an_untouched_form_publishes_nothing() -> None:
    events = Events()
    form = b"action=save&marketing.email=on&marketing.sms=on" + b"".join(
        f"&service.{c}=on".encode() for c in ("email", "sms", "wechat", "push", "inapp")
    )
    assert preference_page.submit(centre(person(), events=events), token(), form).status == 200
    assert events.events == []


def test_one_click_unsubscribe_withdraws_the_links_channel_and_names_the_message() -> None:
    events = Events()
    page = preference_page.submit(centre(person(), events=events), token(), b"List-Unsubscribe=One-Click")
    assert page.status == 200 and "unsubscribed" in page.html
    [raw] = events.events
    assert raw["properties"] == {"channel": "email", "granted": False, "purpose": "marketing", "message_id": "m-1"}
    receipt = receipt_of(parse_event(raw))
    assert receipt is not None and (receipt.message_id, receipt.status) == ("m-1", "unsubscribed")
    # A second one-click (the mail client retries) changes nothing: the event is published once
    after = person(consent={"email": ConsentState(granted=False, changed_at=NOW, source="web")})
    again = Events()
    preference_page.submit(centre(after, events=again), token(), b"List-Unsubscribe=One-Click")
    assert again.events == []


def test_unsubscribe_from_all_withdraws_every_marketing_consent_and_keeps_notices() -> None:
    events = Events()
    preference_page.submit(centre(person(), events=events), token(channel="sms"), b"action=unsubscribe_all")
    changed = {(e["properties"]["channel"], e["properties"]["purpose"]) for e in events.events}
    assert changed == {("email", "marketing"), ("sms", "marketing")}
    [sms] = [e for e in events.events if e["properties"]["channel"] == "sms"]
    assert sms["properties"]["message_id"] == "m-1"  # the channel the link came in


@pytest.mark.parametrize(
    "form",
    [
        b"action=save&marketing.fax=on",
        b"action=save&marketing.email=yes",
        b"action=delete",
        b"marketing.email=on",
        b"action=save&admin=1",
        b"List-Unsubscribe=One-Click&action=save",
        b"List-Unsubscribe=Now",
        b"\xff\xfe",
        b"action=save&" + b"&".join(b"marketing.email=on" for _ in range(40)),
        b"a" * 5000,
        b"action=save&&&=",
    ],
)
def test_a_bad_form_is_a_400_page_and_changes_nothing(form: bytes) -> None:
    events = Events()
    page = preference_page.submit(centre(person(), events=events), token(), form)
    assert page.status == 400, form
    assert events.events == []


def test_links_to_nobody_known_expired_or_unrecordable_say_so() -> None:
    expired = token(expires_at=NOW - timedelta(seconds=1))
    assert preference_page.show(centre(person()), expired).status == 410
    assert preference_page.show(centre(person("p1", brand="outlet")), token()).status == 404
    assert preference_page.show(centre(person(dissolved=True)), token()).status == 404
    assert preference_page.show(centre(), token()).status == 404
    assert preference_page.show(centre(person(), secret=None), token()).status == 503
    nameless = person("p1", "ad_click_id:oceanengine:c1")
    assert preference_page.submit(centre(nameless), token(), b"action=unsubscribe_all").status == 409
    refused = Events(accept=False)
    assert preference_page.submit(centre(person(), events=refused), token(), b"action=unsubscribe_all").status == 503


def test_a_merged_persons_link_changes_the_survivors_consent() -> None:
    events = Events()
    gone, survivor = person("p1", merged_into="p2"), person("p2", "user_id:u-2")
    preference_page.submit(centre(gone, survivor, events=events), token(), b"List-Unsubscribe=One-Click")
    [raw] = events.events
    assert raw["identifiers"] == [{"type": "user_id", "value": "u-2"}]
