"""The in-app inbox API (`functions/inbox_api`): the brand's backend gets a per-person token, the app reads that
person's inbox with it; the first list that shows a message is its `message_delivered` receipt, and its read or
dismissal its `message_opened` receipt.

    POST /v1/inbox/tokens               API key with `inbox:issue` on the whole brand: {token, expires_at} for
                                        {brand_id, person_id} or {brand_id, identifier: {type, value, scope}}
    GET  /v1/inbox                      Authorization: Bearer <token>: the person's messages, newest first, with the
                                        unread count (dismissed and expired ones left out)
    POST /v1/inbox/{message_id}/read    the message read: its receipt published once
    POST /v1/inbox/{message_id}/dismiss read, and left out of the list from now on

The token routes take no API key (`cdp.topology.TOKEN_ROUTES`): the token (`cdp.channels.inbox_tokens`) is their
only credential, and it names one brand and one person. A person merged into another follows `merged_into`: the
survivor's inbox is theirs and every merged-away person's together (a token issued before the merge still works).
Another person's message id is a 404, like one that does not exist.

The receipt is a canonical `message_opened` event (source `app`, channel `inapp`, the message id; event id
`inapp-opened-{message_id}`: a read and a later dismissal are one open), ingested like any channel's: archived under
raw/events/ (replayable as canonical events), claimed in the dedupe ledger, published on the bus, where the message
log moves the message to `opened` and the person's timeline gets the event. A canonical event must name the person by
an identifier and the platform has none for a person id, so the receipt names the identifier the person is best
known by (`cdp.app.person_events.person_identifier`, most recently learned first): the brand's user id, member card,
phone, e-mail, UnionID, device id, OpenID, platform buyer id. A person with none of them (every identifier unbound)
gets no receipt: the read is kept in the inbox, and the message log does not move.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdp.app.person_events import EventSink, person_identifier
from cdp.channels.inbox import Inbox, InboxMessage
from cdp.channels.inbox_tokens import MAX_VALIDITY, InboxToken, mint_inbox_token, read_inbox_token
from cdp.errors import AuthenticationError, CdpError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.identifiers.model import Identifier, IdentifierType
from cdp.identity.resolution import IdentifierRecord
from cdp.ingest.auth import INBOX_ISSUE_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.observability import logger
from cdp.org import OrgDirectory
from cdp.profile.models import Profile
from cdp.shared.time import iso, utc_now

DEFAULT_LIST = 50
MAX_LIST = 100
RECEIPT_SOURCE = "app"
_BRAND_ID = r"^[A-Za-z0-9_.:@/#+\-]{1,128}$"
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")
_DEFAULT_HOURS = 24
_LIMIT = re.compile(r"[0-9]{1,3}")


# ---- requests and answers -----------------------------------------------------------------------------------------


class IdentifierRef(BaseModel):
    """An identifier the brand knows the person by (normalized as ingest normalizes it: E.164 phones, ...)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32, description="phone, email, user_id, member_card, device_id, ...")
    value: str = Field(min_length=1, max_length=256)
    scope: str | None = Field(default=None, min_length=1, max_length=64, description="WeChat app id or platform")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brand_id: str | None = Field(default=None, pattern=_BRAND_ID, description="default: the key's brand")
    person_id: str | None = Field(default=None, min_length=1, max_length=128)
    identifier: IdentifierRef | None = None
    valid_hours: int = Field(
        default=_DEFAULT_HOURS, ge=1, le=int(MAX_VALIDITY.total_seconds() // 3600), description="the token's lifetime"
    )

    @model_validator(mode="after")
    def _one_person(self) -> TokenRequest:
        if (self.person_id is None) == (self.identifier is None):
            raise ValueError("give exactly one of person_id or identifier")
        return self


class IssuedToken(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>` to GET /v1/inbox and its actions")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    brand_id: str
    person_id: str = Field(description="the (surviving) person the token reads the inbox of")
    expires_at: datetime


class InboxEntry(BaseModel):
    message_id: str
    campaign_id: str
    title: str | None = Field(description="the template's subject")
    body: str
    link: str | None = Field(description="where a tap leads: https or the app's own scheme")
    sent_at: datetime
    expires_at: datetime
    status: Literal["unread", "read", "dismissed"]
    read_at: datetime | None = None
    dismissed_at: datetime | None = None

    @classmethod
    def of(cls, m: InboxMessage) -> InboxEntry:
        return cls(
            message_id=m.message_id,
            campaign_id=m.campaign_id,
            title=m.title,
            body=m.body,
            link=m.link,
            sent_at=m.sent_at,
            expires_at=m.expires_at,
            status=m.status,  # one of the three (InboxMessage.status)
            read_at=m.read_at,
            dismissed_at=m.dismissed_at,
        )


class InboxView(BaseModel):
    brand_id: str
    person_id: str
    unread: int = Field(description="messages not read yet (not dismissed, not expired)")
    total: int = Field(description="messages in the inbox (not dismissed, not expired); `messages` holds the newest")
    messages: list[InboxEntry]


# ---- ports --------------------------------------------------------------------------------------------------------


class InboxProfiles(Protocol):
    """The profile store's reads the API needs (`cdp.identity.dynamodb.DynamoIdentityStore` implements them)."""

    def get(self, person_id: str) -> Profile | None: ...

    def lookup_identifiers(self, namespace: str, keys_: Iterable[str]) -> dict[str, IdentifierRecord]: ...


class InboxNotConfiguredError(CdpError):
    """The sources document has no tracked-link secret, so inbox tokens can be neither issued nor checked."""


# ---- the service --------------------------------------------------------------------------------------------------


class InboxApi:
    def __init__(
        self,
        inbox: Inbox,
        profiles: InboxProfiles,
        org: OrgDirectory,
        secret: Callable[[], str | None],
        receipts: EventSink,
        now: Callable[[], datetime] = utc_now,
        default_phone_region: str = "CN",
    ) -> None:
        self._inbox = inbox
        self._profiles = profiles
        self._org = org
        self._secret = secret
        self._receipts = receipts
        self._now = now
        self._default_region = default_phone_region

    # ---- the brand's backend ----------------------------------------------------------------------------------

    def issue(self, client: ApiClient, request: TokenRequest) -> IssuedToken:
        """A token for one person of the brand (inbox:issue on the whole brand)."""
        authorize(client, INBOX_ISSUE_SCOPE)
        brand = request.brand_id or client.org_scope.brand_id
        if not brand:
            raise InvalidInputError("brand_id is required (the key is not limited to a brand)", "brand_id")
        if not client.org_scope.holds_brand(self._org, brand):
            raise ForbiddenError(f"the key of {client.name} is limited to {client.org_scope.label}, not brand {brand}")
        profile = self._person_of(brand, request)
        expires_at = (self._now() + timedelta(hours=request.valid_hours)).replace(microsecond=0)
        token = mint_inbox_token(InboxToken(brand, profile.person_id, expires_at), self._key())
        return IssuedToken(token=token, brand_id=brand, person_id=profile.person_id, expires_at=expires_at)

    def _person_of(self, brand: str, request: TokenRequest) -> Profile:
        if request.identifier is not None:
            key = _identifier_key(request.identifier, self._phone_region(brand))
            record = self._profiles.lookup_identifiers(self._org.brand(brand).namespace, [key]).get(key)
            if record is None or record.person_id is None:
                raise NotFoundError(f"no person holds {request.identifier.type} {request.identifier.value!r}")
            wanted = record.person_id
        else:
            wanted = str(request.person_id)
        profile = self._profiles.get(wanted)
        if profile is None or profile.dissolved or profile.brand_id != brand:
            raise NotFoundError(f"no person {wanted} in brand {brand}")
        return profile

    def _phone_region(self, brand_id: str) -> str:
        brand = self._org.brands.get(brand_id)
        return brand.phone_region if brand else self._default_region

    # ---- the app ----------------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> InboxToken:
        """The token of an `Authorization: Bearer <token>` header; AuthenticationError otherwise."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError("send the person's inbox token as `Authorization: Bearer <token>`")
        return read_inbox_token(value.strip(), self._key(), self._now())

    def messages(self, token: InboxToken, limit: str | None = None) -> InboxView:
        size = _limit(limit)
        profile, people = self._holder(token)
        now = self._now()
        shown = [
            m for m in self._inbox.messages(token.brand_id, people) if m.dismissed_at is None and not m.expired(now)
        ]
        listed = shown[:size]
        for message in listed:  # the app has it now: delivered (once; an opened one was delivered already)
            if not (message.delivered_reported or message.opened_reported):
                self._report(profile, message, "list")
        return InboxView(
            brand_id=token.brand_id,
            person_id=profile.person_id,
            unread=sum(1 for m in shown if m.read_at is None),
            total=len(shown),
            messages=[InboxEntry.of(m) for m in listed],
        )

    def read(self, token: InboxToken, message_id: str) -> InboxEntry:
        return self._mark(token, message_id, dismiss=False)

    def dismiss(self, token: InboxToken, message_id: str) -> InboxEntry:
        return self._mark(token, message_id, dismiss=True)

    def _mark(self, token: InboxToken, message_id: str, dismiss: bool) -> InboxEntry:
        if not _MESSAGE_ID.match(message_id):
            raise NotFoundError("no such message in this inbox")
        profile, people = self._holder(token)
        now = self._now()
        found = self._inbox.find(token.brand_id, people, message_id)
        marked = self._inbox.mark(found, now, dismiss) if found is not None and not found.expired(now) else None
        if marked is None:
            raise NotFoundError("no such message in this inbox")
        if not marked.opened_reported:  # once published, a read again (or the dismissal) publishes nothing
            self._report(profile, marked, "dismiss" if dismiss else "read")
        return InboxEntry.of(marked)

    def _report(self, profile: Profile, message: InboxMessage, action: str) -> None:
        """The receipt of `action`: a list is the message's delivery, a read or a dismissal its open."""
        identifier = person_identifier(profile)
        if identifier is None:
            logger.warning(
                "in-app message seen by a person without identifiers: no receipt", message_id=message.message_id
            )
            return
        delivered = action == "list"
        properties = {"message_id": message.message_id, "channel": "inapp"}
        if delivered:
            properties["status"] = "delivered"
        if message.campaign_id:
            properties["campaign_id"] = message.campaign_id
        event = {
            "schema_version": "1",
            "event_id": delivered_event_id(message.message_id) if delivered else opened_event_id(message.message_id),
            "event_type": "message_delivered" if delivered else "message_opened",
            "source": RECEIPT_SOURCE,
            "brand_id": message.brand_id,
            "occurred_at": iso(self._now() if delivered else (message.read_at or self._now())),
            "identifiers": [identifier],
            "properties": properties,
            "context": {"inbox_action": action},
        }
        if self._receipts.publish(event, request_id=f"inbox-{action}-{message.message_id}"):
            self._inbox.reported(message, "delivered" if delivered else "opened")

    def _holder(self, token: InboxToken) -> tuple[Profile, list[str]]:
        """The token's person as they are now (merges followed), and every id their inbox is kept under."""
        profile = self._profiles.get(token.person_id)
        if profile is None or profile.dissolved or profile.brand_id != token.brand_id:
            raise NotFoundError("the token's person is not known (any more)")
        return profile, list(dict.fromkeys([profile.person_id, token.person_id, *profile.merged_from]))

    def _key(self) -> str:
        secret = self._secret()
        if not secret:
            raise InboxNotConfiguredError("inbox tokens are not configured (the sources secret has no redirect)")
        return secret


def delivered_event_id(message_id: str) -> str:
    """The delivery's event id: the first list that shows the message."""
    return f"inapp-delivered-{message_id}"


def opened_event_id(message_id: str) -> str:
    """The receipt's event id: one per message, so a read and a later dismissal are one open."""
    return f"inapp-opened-{message_id}"


def _identifier_key(ref: IdentifierRef, phone_region: str) -> str:
    """The normalized key of an identifier given by the brand; a 400 naming its field otherwise."""
    try:
        IdentifierType(ref.type)
    except ValueError as exc:
        known = ", ".join(t.value for t in IdentifierType)
        raise InvalidInputError(
            f"unknown identifier type {ref.type!r}; known types: {known}", "identifier.type"
        ) from exc
    try:
        ident = Identifier.model_validate(
            {"type": ref.type, "value": ref.value, "scope": ref.scope}, context={"phone_region": phone_region}
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = {"type": "identifier.type", "value": "identifier.value"}.get(str(err["loc"][0]) if err["loc"] else "")
        raise InvalidInputError(f"identifier: {err['msg']}", field or "identifier.scope") from exc
    return ident.key


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIST
    if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= MAX_LIST:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_LIST}", "limit")
    return int(text)
