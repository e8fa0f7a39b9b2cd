"""The preference centre: where a person, from the signed link in a marketing message (`cdp.channels.preference_links`),
sees and changes their consent per channel and purpose. Its page is `cdp.app.preference_page`.

    GET  /v1/preferences/{token}   the person's current choices: marketing and service messages, per channel
    POST /v1/preferences/{token}   the form saved (`action=save` with a `marketing.{channel}` / `service.{channel}`
                                   field for each box ticked, or `action=unsubscribe_all`), or an e-mail client's
                                   one-click unsubscribe (RFC 8058: the body `List-Unsubscribe=One-Click`), which
                                   withdraws the marketing consent of the channel the link came in

Each change is a `consent_changed` event like any other (source `web`, purpose `marketing` or `transactional`),
ingested through `cdp.app.person_events`: archived, deduped, published; the profile folds it (the latest decision
wins) and the send path honours it from then on. A marketing consent withdrawn on the channel the link came in names
that message (`message_id`), so the message log shows it `unsubscribed`. Only what changed is sent: saving the form
untouched publishes nothing. The page answers with the choices as submitted: the profile takes them within seconds.

The token is the only credential (`cdp.topology.TOKEN_ROUTES`): it names one brand and one person. A person merged
into another is followed to the survivor; a person erased or of another brand is a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from cdp.app.person_events import EventSink, person_identifier
from cdp.channels.preference_links import PREFERENCE_CHANNELS, PreferenceLink, read_preference_token
from cdp.connectors.feedback import digest
from cdp.errors import CdpError, ConflictError, InvalidInputError, NotFoundError, RetryableError
from cdp.profile.models import Profile
from cdp.shared.time import iso, utc_now

Purpose = Literal["marketing", "service"]
PURPOSES: tuple[Purpose, ...] = ("marketing", "service")
EVENT_PURPOSE: dict[Purpose, str] = {"marketing": "marketing", "service": "transactional"}  # the event's word
EVENT_SOURCE = "web"
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
MAX_FIELDS = 2 + len(PURPOSES) * len(PREFERENCE_CHANNELS)
Action = Literal["save", "unsubscribe_all", "one_click"]


class ChannelChoice(BaseModel):
    channel: str
    marketing: bool  # opt-in: offers and news
    service: bool  # on unless refused: order, delivery and account notices


class Preferences(BaseModel):
    brand_id: str
    person_id: str
    channel: str | None  # the channel of the message the link came in
    choices: list[ChannelChoice]


@dataclass(frozen=True)
class SavedPreferences:
    preferences: Preferences
    action: Action
    changed: tuple[tuple[str, Purpose, bool], ...]  # (channel, purpose, granted) for each consent that changed


class PreferenceProfiles(Protocol):
    """A person as they are now (merges followed): `cdp.identity.dynamodb.DynamoIdentityStore.get`."""

    def get(self, person_id: str) -> Profile | None: ...


class PreferencesNotConfiguredError(CdpError):
    """The sources document has no tracked-link secret, so preference links can be neither made nor checked."""


class NoIdentifierError(ConflictError):
    """The person has no identifier left to name them by in an event (every one unbound)."""


class PreferenceCentre:
    def __init__(
        self,
        profiles: PreferenceProfiles,
        secret: Callable[[], str | None],
        events: EventSink,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._profiles = profiles
        self._secret = secret
        self._events = events
        self._now = now

    def show(self, token: str) -> Preferences:
        link, profile = self._open(token)
        return _preferences(link, profile, _current(profile))

    def submit(self, token: str, fields: Mapping[str, list[str]]) -> SavedPreferences:
        """A form post or a one-click unsubscribe: the consents it changes published as events."""
        link, profile = self._open(token)
        current = _current(profile)
        action, wanted = _wanted(fields, link, current)
        changed = tuple(
            (channel, purpose, granted)
            for (channel, purpose), granted in wanted.items()
            if current[(channel, purpose)] != granted
        )
        if changed:
            self._publish(link, profile, action, changed)
        return SavedPreferences(_preferences(link, profile, wanted), action, changed)

    def _open(self, token: str) -> tuple[PreferenceLink, Profile]:
        secret = self._secret()
        if not secret:
            raise PreferencesNotConfiguredError(
                "preference links are not configured (the sources secret has no redirect)"
            )
        link = read_preference_token(token, secret, self._now())
        profile = self._profiles.get(link.person_id)
        if profile is None or profile.dissolved or profile.brand_id != link.brand_id:
            raise NotFoundError("the link's person is not known (any more)")
        return link, profile

    def _publish(
        self, link: PreferenceLink, profile: Profile, action: Action, changed: tuple[tuple[str, Purpose, bool], ...]
    ) -> None:
        identifier = person_identifier(profile)
        if identifier is None:
            raise NoIdentifierError("the person has no identifier to record the change under")
        at = self._now()  # to the microsecond: a change made right after another is the later one
        for channel, purpose, granted in changed:
            properties: dict[str, Any] = {"channel": channel, "granted": granted, "purpose": EVENT_PURPOSE[purpose]}
            if not granted and purpose == "marketing" and channel == link.channel and link.message_id:
                properties["message_id"] = link.message_id  # the message this unsubscribe answers
            event_id = "prefs-" + digest(profile.person_id, channel, purpose, str(granted), iso(at), size=24)
            event = {
                "schema_version": "1",
                "event_id": event_id,
                "event_type": "consent_changed",
                "source": EVENT_SOURCE,
                "brand_id": profile.brand_id,
                "occurred_at": iso(at),
                "identifiers": [identifier],
                "properties": properties,
                "context": {"preference_centre": action},
            }
            if not self._events.publish(event, request_id=event_id):
                raise RetryableError(f"the {purpose} consent of {channel} was not recorded: try again")


def _current(profile: Profile) -> dict[tuple[str, Purpose], bool]:
    return {
        (channel, purpose): profile.has_consent(channel, purpose=purpose)
        for channel in PREFERENCE_CHANNELS
        for purpose in PURPOSES
    }


def _preferences(link: PreferenceLink, profile: Profile, state: Mapping[tuple[str, Purpose], bool]) -> Preferences:
    return Preferences(
        brand_id=profile.brand_id,
        person_id=profile.person_id,
        channel=link.channel,
        choices=[
            ChannelChoice(channel=c, marketing=state[(c, "marketing")], service=state[(c, "service")])
            for c in PREFERENCE_CHANNELS
        ],
    )


def _wanted(
    fields: Mapping[str, list[str]], link: PreferenceLink, current: Mapping[tuple[str, Purpose], bool]
) -> tuple[Action, dict[tuple[str, Purpose], bool]]:
    """What the post asks for, every consent named; InvalidInputError naming the field for anything else."""
    if ONE_CLICK_FIELD in fields:
        if len(fields) != 1 or fields[ONE_CLICK_FIELD] != [ONE_CLICK_VALUE]:
            raise InvalidInputError(
                f"a one-click unsubscribe is the body {ONE_CLICK_FIELD}={ONE_CLICK_VALUE}", ONE_CLICK_FIELD
            )
        if link.channel is None:
            raise InvalidInputError("this link names no channel to unsubscribe from", ONE_CLICK_FIELD)
        return "one_click", {**current, (link.channel, "marketing"): False}
    if len(fields) > MAX_FIELDS:
        raise InvalidInputError(f"at most {MAX_FIELDS} form fields", "form")
    ticked: set[tuple[str, Purpose]] = set()
    for name, values in fields.items():
        if name == "action":
            continue
        purpose, _, channel = name.partition(".")
        if purpose not in PURPOSES or channel not in PREFERENCE_CHANNELS or values != ["on"]:
            raise InvalidInputError(f"unknown form field {name[:64]!r}", name[:64])
        ticked.add((channel, purpose))
    action = fields.get("action", [""])
    if action == ["unsubscribe_all"]:
        return "unsubscribe_all", {**current, **{(c, "marketing"): False for c in PREFERENCE_CHANNELS}}
    if action != ["save"]:
        raise InvalidInputError("action is save or unsubscribe_all", "action")
    return "save", {key: key in ticked for key in current}
