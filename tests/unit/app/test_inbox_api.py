"""The in-app inbox API (cdp.app.inbox_api) on in-memory ports: tokens only for the brand's own persons with
inbox:issue, the inbox newest first with its unread count, a read published once as a message_opened receipt that
the message log understands, a dismissal that hides the message, and merged persons reading both inboxes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.app.inbox_api import (
    IdentifierRef,
    InboxApi,
    InboxNotConfiguredError,
    TokenRequest,
    delivered_event_id,
    opened_event_id,
)
from cdp.app.person_events import ARCHIVE_SOURCE, EventSink, person_identifier
from cdp.channels.inbox import Inbox, InboxMessage
from cdp.channels.inbox_tokens import InboxToken, read_inbox_token
from cdp.channels.lifecycle import receipt_of
from cdp.connectors.replay import CANONICAL_SOURCE
from cdp.errors import AuthenticationError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.identity.resolution import IdentifierRecord
from cdp.ingest.auth import INBOX_ISSUE_SCOPE, READ_PROFILES_SCOPE
from cdp.ingest.events import parse_event
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.models import Profile

SECRET = "local-redirect-secret"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ORG = OrgDirectory()
BACKEND = ApiClient("bakery-backend", frozenset({INBOX_ISSUE_SCOPE}), ScopeRef(brand_id="bakery"))


class MemoryInbox(Inbox):
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], InboxMessage] = {}

    def put(self, message: InboxMessage) -> bool:
        key = (message.brand_id, message.person_id, message.message_id)
        if key in self.items:
            return False
        self.items[key] = message
        return True

    def messages(self, brand_id: str, person_ids: Sequence[str]) -> list[InboxMessage]:
        found = [m for (b, p, _), m in self.items.items() if b == brand_id and p in person_ids]
        return sorted(found, key=lambda m: (m.sent_at, m.message_id), reverse=True)

    def find(self, brand_id: str, person_ids: Sequence[str], message_id: str) -> InboxMessage | None:
        return next(
            (self.items[(brand_id, p, message_id)] for p in person_ids if (brand_id, p, message_id) in self.items), None
        )

    def mark(self, message: InboxMessage, at: datetime, dismiss: bool = False) -> InboxMessage | None:
        key = (message.brand_id, message.person_id, message.message_id)
        if key not in self.items:
            return None
        old = self.items[key]
        new = replace(
            old, read_at=old.read_at or at, dismissed_at=(old.dismissed_at or at) if dismiss else old.dismissed_at
        )
        self.items[key] = new
        return new

    def reported(self, message: InboxMessage, receipt: str = "opened") -> None:
        key = (message.brand_id, message.person_id, message.message_id)
        self.items[key] = replace(self.items[key], **{f"{receipt}_reported": True})


class Profiles:
    def __init__(self, *profiles: Profile) -> None:
        self.by_id = {p.person_id: p for p in profiles}

    def get(self, person_id: str) -> Profile | None:
        found = self.by_id.get(person_id)
        while found is not None and found.merged_into:
            found = self.by_id.get(found.merged_into)
        return found

    def lookup_identifiers(self, namespace: str, keys_: Iterable[str]) -> dict[str, IdentifierRecord]:
        out = {}
        for key in keys_:
            owner = next((p for p in self.by_id.values() if key in p.identifiers and not p.merged_into), None)
            if owner is not None:
                out[key] = IdentifierRecord(key=key, person_id=owner.person_id)
        return out


class Receipts(EventSink):
    def __init__(self, accept: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.accept = accept

    def publish(self, event: dict[str, Any], request_id: str) -> bool:
        self.events.append(event)
        return self.accept


def person(pid: str, *identifiers: str, brand: str = "bakery", **changes: Any) -> Profile:
    return Profile(
        person_id=pid, brand_id=brand, created_at=T0, updated_at=T0, identifiers=list(identifiers), **changes
    )


def message(n: int, pid: str = "p1", minutes: int = 0, **changes: Any) -> InboxMessage:
    sent = T0 + timedelta(minutes=minutes)
    values: dict[str, Any] = {
        "message_id": f"m-{n}",
        "brand_id": "bakery",
        "person_id": pid,
        "campaign_id": "spring",
        "step": "touch1",
        "title": f"Title {n}",
        "body": f"Body {n}",
        "sent_at": sent,
        "expires_at": sent + timedelta(days=30),
    }
    return InboxMessage(**{**values, **changes})


class World:
    def __init__(self, *profiles: Profile, secret: str | None = SECRET, receipts: Receipts | None = None) -> None:
        self.now = T0 + timedelta(hours=1)
        self.inbox = MemoryInbox()
        self.receipts = receipts or Receipts()
        self.api = InboxApi(self.inbox, Profiles(*profiles), ORG, lambda: secret, self.receipts, now=lambda: self.now)

    def token(self, pid: str = "p1", brand: str = "bakery") -> InboxToken:
        issued = self.api.issue(
            BACKEND if brand == "bakery" else _client(brand), TokenRequest(person_id=pid, brand_id=brand)
        )
        return self.api.authenticate(f"Bearer {issued.token}")


def _client(brand: str) -> ApiClient:
    return ApiClient(f"{brand}-backend", frozenset({INBOX_ISSUE_SCOPE}), ScopeRef(brand_id=brand))


# ---- issuing ----------------------------------------------------------------------------------------------------


def test_the_brands_backend_gets_a_token_for_its_person_valid_the_hours_asked() -> None:
    world = World(person("p1", "phone:+8613900000001"))
    # When the backend asks for a 2-hour token
    issued = world.api.issue(BACKEND, TokenRequest(person_id="p1", valid_hours=2))
    # Then it names the key's brand and the person, and reads back until it expires
    assert (issued.brand_id, issued.person_id, issued.token_type) == ("bakery", "p1", "Bearer")
    assert issued.expires_at == (world.now + timedelta(hours=2)).replace(microsecond=0)
    assert read_inbox_token(issued.token, SECRET, world.now) == InboxToken("bakery", "p1", issued.expires_at)


def test_a_token_is_found_by_an_identifier_the_brand_knows_the_person_by() -> None:
    world = World(person("p1", "user_id:u-77", "phone:+8613900000001"))
    by_user = world.api.issue(BACKEND, TokenRequest(identifier=IdentifierRef(type="user_id", value="u-77")))
    # a phone as the brand writes it is normalized as ingest does (E.164 in the brand's region)
    by_phone = world.api.issue(BACKEND, TokenRequest(identifier=IdentifierRef(type="phone", value="139 0000 0001")))
    assert by_user.person_id == by_phone.person_id == "p1"
    with pytest.raises(NotFoundError):
        world.api.issue(BACKEND, TokenRequest(identifier=IdentifierRef(type="user_id", value="nobody")))
    with pytest.raises(InvalidInputError) as bad:
        world.api.issue(BACKEND, TokenRequest(identifier=IdentifierRef(type="shoe_size", value="42")))
    assert bad.value.location == "identifier.type"


def test_a_merged_away_person_gets_a_token_of_the_survivor() -> None:
    world = World(person("p1", merged_into="p2"), person("p2", merged_from=["p1"]))
    assert world.api.issue(BACKEND, TokenRequest(person_id="p1")).person_id == "p2"


@pytest.mark.parametrize(
    ("client", "request_", "error"),
    [
        (ApiClient("reader", frozenset({READ_PROFILES_SCOPE}), ScopeRef(brand_id="bakery")), {}, ForbiddenError),
        (_client("outlet"), {"brand_id": "bakery"}, ForbiddenError),
        (
            ApiClient("till", frozenset({INBOX_ISSUE_SCOPE}), ScopeRef(brand_id="bakery", store_id="sh01")),
            {},
            ForbiddenError,
        ),
        (ApiClient("admin", frozenset({INBOX_ISSUE_SCOPE})), {}, InvalidInputError),  # no brand named
        (BACKEND, {"person_id": "unknown"}, NotFoundError),
        (BACKEND, {"person_id": "outlet-person"}, NotFoundError),  # another brand's person
        (BACKEND, {"person_id": "gone"}, NotFoundError),  # dissolved
    ],
)
def test_tokens_only_for_the_whole_brand_with_the_scope_and_only_of_its_persons(
    client: ApiClient, request_: dict[str, Any], error: type[Exception]
) -> None:
    world = World(person("p1"), person("outlet-person", brand="outlet"), person("gone", dissolved=True))
    with pytest.raises(error):
        world.api.issue(client, TokenRequest.model_validate({"person_id": "p1", **request_}))


@pytest.mark.parametrize(
    "body",
    [{}, {"person_id": "p1", "identifier": {"type": "user_id", "value": "u"}}, {"person_id": "p1", "valid_hours": 0}],
)
def test_a_request_names_exactly_one_person_and_a_lifetime_within_a_week(body: dict[str, Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TokenRequest.model_validate(body)
    with pytest.raises(ValidationError):
        TokenRequest.model_validate({"person_id": "p1", "valid_hours": 24 * 7 + 1})


def test_without_the_tracked_link_secret_no_token_is_issued_nor_read() -> None:
    world = World(person("p1"), secret=None)
    with pytest.raises(InboxNotConfiguredError):
        world.api.issue(BACKEND, TokenRequest(person_id="p1"))
    with pytest.raises(InboxNotConfiguredError):
        world.api.authenticate("Bearer x.y")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "x.y", "bearer nonsense"])
def test_the_app_must_send_a_bearer_token(header: str | None) -> None:
    world = World(person("p1"))
    with pytest.raises(AuthenticationError):
        world.api.authenticate(header)


# ---- reading ----------------------------------------------------------------------------------------------------


def test_the_inbox_lists_the_newest_first_with_the_unread_count_and_leaves_out_expired_and_dismissed() -> None:
    world = World(person("p1"), person("p9"))
    for m in (
        message(1, minutes=1),
        message(2, minutes=3),
        message(3, minutes=2, read_at=T0),
        message(4, minutes=4, dismissed_at=T0, read_at=T0),
        message(5, minutes=5, expires_at=T0),  # expired: its TTL has not swept it yet
        message(6, pid="p9", minutes=6),  # someone else's
    ):
        world.inbox.put(m)
    view = world.api.messages(world.token())
    assert [m.message_id for m in view.messages] == ["m-2", "m-3", "m-1"]
    assert (view.unread, view.total, view.person_id) == (2, 3, "p1")
    assert [m.status for m in view.messages] == ["unread", "read", "unread"]
    assert [m.message_id for m in world.api.messages(world.token(), "1").messages] == ["m-2"]
    for bad in ("0", "101", "x", "²", "-1", "1.5"):
        with pytest.raises(InvalidInputError):
            world.api.messages(world.token(), bad)


def test_a_read_is_published_once_as_a_receipt_the_message_log_understands() -> None:
    world = World(person("p1", "device_id:dev-1", "phone:+8613900000001", "user_id:u-1"))
    world.inbox.put(message(1))
    token = world.token()
    # When the app marks it read, twice, then dismisses it
    read = world.api.read(token, "m-1")
    world.now += timedelta(minutes=5)
    again = world.api.read(token, "m-1")
    dismissed = world.api.dismiss(token, "m-1")
    # Then it shows read (the first time kept), then dismissed; one receipt was published, for the first read
    assert (read.status, read.read_at, again.read_at) == ("read", T0 + timedelta(hours=1), read.read_at)
    assert (dismissed.status, dismissed.dismissed_at) == ("dismissed", world.now)
    [event] = world.receipts.events
    # And the receipt is a canonical message_opened of channel inapp naming the person by their user id
    parsed = parse_event(event)
    assert parsed.event_id == opened_event_id("m-1") and parsed.source.value == "app"
    assert [i.key for i in parsed.identifiers] == ["user_id:u-1"]
    receipt = receipt_of(parsed)
    assert receipt is not None
    assert (receipt.message_id, receipt.channel, receipt.status, receipt.at) == ("m-1", "inapp", "opened", read.read_at)
    # And the message is gone from the list
    assert world.api.messages(token).messages == []


def test_the_first_list_that_shows_a_message_is_its_delivery_receipt() -> None:
    world = World(person("p1", "phone:+8613900000001"))
    world.inbox.put(message(1))
    token = world.token()
    # When the app lists the inbox twice, then reads the message
    world.api.messages(token)
    world.now += timedelta(minutes=1)
    world.api.messages(token)
    world.api.read(token, "m-1")
    # Then one delivery (at the first list) and one open were published, which the message log understands
    delivered, opened = (parse_event(e) for e in world.receipts.events)
    assert delivered.event_id == delivered_event_id("m-1") and opened.event_id == opened_event_id("m-1")
    receipt = receipt_of(delivered)
    assert receipt is not None and (receipt.status, receipt.at) == ("delivered", T0 + timedelta(hours=1))
    # And a message read before the app ever listed it is not reported delivered afterwards (opened ranks higher)
    world.inbox.put(message(2, minutes=1))
    world.api.read(token, "m-2")
    world.api.messages(token)
    assert [e["event_id"] for e in world.receipts.events][2:] == [opened_event_id("m-2")]


def test_a_dismissal_without_a_read_is_the_open_and_hides_the_message() -> None:
    world = World(person("p1", "phone:+8613900000001"))
    world.inbox.put(message(1))
    world.inbox.put(message(2, minutes=1))
    token = world.token()
    world.api.dismiss(token, "m-1")
    [event] = world.receipts.events
    assert (event["event_type"], event["context"], event["identifiers"]) == (
        "message_opened",
        {"inbox_action": "dismiss"},
        [{"type": "phone", "value": "+8613900000001"}],
    )
    view = world.api.messages(token)
    assert ([m.message_id for m in view.messages], view.unread) == (["m-2"], 1)


def test_a_receipt_that_was_not_accepted_is_published_again_on_the_next_read() -> None:
    receipts = Receipts(accept=False)
    world = World(person("p1", "phone:+8613900000001"), receipts=receipts)
    world.inbox.put(message(1))
    token = world.token()
    world.api.read(token, "m-1")
    receipts.accept = True
    world.api.read(token, "m-1")
    world.api.read(token, "m-1")
    assert len(receipts.events) == 2


def test_a_person_without_identifiers_reads_but_no_receipt_is_published() -> None:
    world = World(person("p1"))
    world.inbox.put(message(1))
    assert world.api.read(world.token(), "m-1").status == "read"
    assert world.receipts.events == []


@pytest.mark.parametrize("message_id", ["m-other", "m-missing", "m-expired", "", "../m-1", "m-1/read", "x" * 200])
def test_another_persons_message_an_unknown_one_or_an_expired_one_is_not_found(message_id: str) -> None:
    world = World(person("p1", "phone:+8613900000001"), person("p2"))
    world.inbox.put(message(1))
    world.inbox.put(replace(message(9, pid="p2"), message_id="m-other"))
    world.inbox.put(replace(message(8, expires_at=T0), message_id="m-expired"))
    for action in (world.api.read, world.api.dismiss):
        with pytest.raises(NotFoundError):
            action(world.token(), message_id)
    assert world.receipts.events == []


def test_a_merged_person_reads_both_inboxes_and_an_old_token_still_works() -> None:
    # Given p1 merged into p2, each with a message in their own inbox
    world = World(person("p1", merged_into="p2"), person("p2", "phone:+8613900000002", merged_from=["p1"]))
    world.inbox.put(message(1, pid="p1"))
    world.inbox.put(message(2, pid="p2", minutes=1))
    old = InboxToken("bakery", "p1", T0 + timedelta(days=1))  # a token issued before the merge
    for token in (old, world.token("p2")):
        view = world.api.messages(token)
        assert (view.person_id, [m.message_id for m in view.messages]) == ("p2", ["m-2", "m-1"])
    # When the survivor reads the merged-away person's message / Then it is found where it is kept
    assert world.api.read(world.token("p2"), "m-1").status == "read"
    assert world.inbox.items[("bakery", "p1", "m-1")].opened_reported


def test_a_token_of_a_person_who_is_gone_reads_nothing() -> None:
    world = World(person("p1", dissolved=True), person("o1", brand="outlet"))
    for token in (InboxToken("bakery", "p1", T0), InboxToken("bakery", "nobody", T0), InboxToken("bakery", "o1", T0)):
        with pytest.raises(NotFoundError):
            world.api.messages(token)


def test_the_receipt_names_the_identifier_the_person_is_best_known_by() -> None:
    assert person_identifier(person("p", "device_id:d1", "email:a@b.cn", "phone:+8613900000001")) == {
        "type": "phone",
        "value": "+8613900000001",
    }
    assert person_identifier(person("p", "wechat_openid:wx-app:o-1")) == {
        "type": "wechat_openid",
        "value": "o-1",
        "scope": "wx-app",
    }
    assert person_identifier(person("p", "email:old@b.cn", "email:new@b.cn")) == {"type": "email", "value": "new@b.cn"}
    assert person_identifier(person("p", "ad_click_id:oceanengine:c1")) is None


def test_receipts_are_archived_where_replay_reads_canonical_events() -> None:
    assert ARCHIVE_SOURCE == CANONICAL_SOURCE
