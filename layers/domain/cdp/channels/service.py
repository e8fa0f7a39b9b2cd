"""Send one batch of a campaign step exactly once per (campaign, step, person): consent, address, render, ledger,
deliver, record. Pure domain: every AWS effect goes through a port."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Literal

from cdp.channels.contact import ContactRules, PlannedSend
from cdp.channels.models import (
    ChannelName,
    OutboundMessage,
    SendBatchRequest,
    SendBatchResult,
    journey_place,
    message_id_for,
)
from cdp.channels.ports import (
    BatchReader,
    Channel,
    ClaimOutcome,
    DeadAddresses,
    DeliveryRejected,
    LoggedMessage,
    MessageLog,
    MessageSpending,
    OfferIssuer,
    OfferNotIssuedError,
    SendKey,
    SendLedger,
    StopSwitch,
)
from cdp.channels.preference_links import PATH as PREFERENCES_PATH
from cdp.channels.preference_links import (
    PREFERENCE_CHANNELS,
    PreferenceLink,
    mint_preference_token,
    preference_url,
)
from cdp.channels.preference_links import VALIDITY as PREFERENCE_VALIDITY
from cdp.channels.templates import TemplateRenderError, render
from cdp.connectors.redirect import SOURCES as TRACKED_CHANNELS
from cdp.connectors.redirect import wrap_links
from cdp.connectors.short_links import ShortLinks
from cdp.errors import CdpError, ChannelError, InvalidInputError, StoreError
from cdp.identifiers.model import Identifier, IdentifierType
from cdp.observability import logger
from cdp.offers.service import plan_id_for
from cdp.org import FrequencyCap
from cdp.profile.models import Profile
from cdp.profile.ports import MessageRecord, ProfileAnnotator, ProfileReader
from cdp.shared.time import days_to_birthday, utc_now

PREFERRED_CHANNEL_TAG = (
    "preferred_channel"  # a tag whose value names a channel: the person's choice when a step allows it
)
# The identifier type that carries the address of each channel; None: the person id itself (outbox, webhook, inapp).
ADDRESS_TYPES: Mapping[ChannelName, IdentifierType | None] = {
    "sms": IdentifierType.PHONE,
    "email": IdentifierType.EMAIL,
    "push": IdentifierType.DEVICE_ID,
    "wechat": IdentifierType.WECHAT_OPENID,
    "webhook": None,
    "outbox": None,
    "inapp": None,  # the person's in-app inbox (cdp.channels.inbox)
}
MAX_REPORTED_FAILURES = 10
MAX_REASON_CHARS = 200  # provider messages can be long (and may echo an address): keep the run log small
SEND_TIME_RESERVE_S = 20.0  # an invocation stops sending with this much time left (one rate window and one call)
RATE_DEFERRAL = timedelta(minutes=1)  # the persons it did not reach go with the next tick


@dataclass(frozen=True)
class Address:
    value: str
    scope: str | None = None  # the WeChat app id an OpenID belongs to


def find_address(profile: Profile, channel: ChannelName, dead: Collection[str] = ()) -> Address | None:
    """The most recently learned identifier of the channel's type (identifiers are appended as they are seen) that
    no provider refused for good (`dead`: identifier keys)."""
    kind = ADDRESS_TYPES[channel]
    if kind is None:
        return Address(profile.person_id)
    for key in reversed(profile.identifiers):
        if key.startswith(f"{kind.value}:") and key not in dead:
            ident = Identifier.from_key(key)
            return Address(ident.value, ident.scope)
    return None


def candidate_keys(profile: Profile, request: SendBatchRequest) -> list[str]:
    """Every identifier key a message of the request could go to for this person (what dead addresses are read for)."""
    kinds = {ADDRESS_TYPES[name] for name in (request.channel, *request.or_channels)} - {None}
    return [key for key in profile.identifiers if any(key.startswith(f"{kind.value}:") for kind in kinds if kind)]


def address_key(channel: ChannelName, address: Address) -> str:
    """The identifier key of the address a message went to (what a tracked click is attributed by)."""
    kind = ADDRESS_TYPES[channel]
    if kind is None:
        return f"person:{address.value}"
    return f"{kind.value}:{address.scope}:{address.value}" if address.scope else f"{kind.value}:{address.value}"


def template_context(profile: Profile, request: SendBatchRequest, today: date) -> dict[str, Any]:
    """What a template may use: {{ traits.name }}, {{ member_level }}, {{ points_balance }}, {{ offer.code }},
    {{ family[0].name }} (family members, the next birthday from `today` first), {{ predicted.next_product.ranked[0] }}
    (each model's score, outputs and ranked items) ..."""
    return {
        "person_id": profile.person_id,
        "traits": profile.traits.model_dump(mode="json"),
        "member_level": profile.traits.member_level,
        "points_balance": profile.facts.points_balance,
        "family": [
            {"relation": m.relation, "name": m.name, "birthday": m.birthday.isoformat()}
            for m in sorted(
                profile.facts.family.values(), key=lambda m: (days_to_birthday(m.birthday, today), m.name or "")
            )
        ],
        "offer": request.offer.model_dump(mode="json") if request.offer else None,
        "campaign_id": request.campaign_id,
        "step": request.step,
        "preferences_url": None,  # the message's own preference link (`LinkTracking.preference_link`)
        "predicted": {
            name: {"score": s.score, "ranked": list(s.items), **s.outputs} for name, s in sorted(profile.scores.items())
        },
    }


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


class _Batch:
    """Counters and records of one batch run."""

    def __init__(
        self, request: SendBatchRequest, annotator: ProfileAnnotator, now: datetime, contact: ContactRules | None
    ) -> None:
        self.request = request
        self.annotator = annotator
        self.now = now
        self.contact = contact
        self.result = SendBatchResult(
            campaign_id=request.campaign_id, run_id=request.run_id, step=request.step, channel=request.channel
        )
        self.render_failures = 0
        self.permanent_failures = 0  # refused for good by the provider: retrying the batch cannot help
        self.sent_earlier = 0  # ALREADY_SENT or IN_FLIGHT in the ledger: delivered (or being delivered) elsewhere
        self.final_earlier = 0  # FAILED_FOR_GOOD in the ledger: refused for good by an earlier attempt
        self.logged: list[LoggedMessage] = []  # for the message log, written once the batch is done
        self.dead: set[str] = set()  # the batch's addresses a provider refused for good (never sent to)
        self.dead_addresses: DeadAddresses | None = None

    def record(
        self,
        person_id: str,
        message_id: str,
        status: str,
        provider_id: str | None = None,
        channel: str | None = None,
    ) -> None:
        record = MessageRecord(
            person_id=person_id,
            message_id=message_id,
            campaign_id=self.request.campaign_id,
            step=self.request.step,
            channel=channel or self.request.channel,
            sent_at=self.now,
            provider_id=provider_id,
            status=status,
        )
        try:
            self.annotator.record_message(record)
        except CdpError:
            # The delivery (or suppression) already happened and the ledger holds the truth; losing the timeline
            # entry must not fail the other persons of the batch.
            logger.exception("message record not written", person_id=person_id, message_id=message_id, status=status)

    def fail(self, person_id: str, message_id: str, reason: str, channel: str | None = None) -> None:
        self.result.failed += 1
        by_channel, name = self.result.failed_by_channel, channel or self.request.channel
        by_channel[name] = by_channel.get(name, 0) + 1
        if len(self.result.failures) < MAX_REPORTED_FAILURES:
            self.result.failures.append(f"{person_id}: {reason[:MAX_REASON_CHARS]}")
        self.record(person_id, message_id, "failed", channel=channel)

    def log(
        self,
        message: OutboundMessage,
        status: str,
        provider: str | None = None,
        provider_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.logged.append(
            LoggedMessage(
                message_id=message.message_id,
                brand_id=message.brand_id,
                person_id=message.person_id,
                campaign_id=message.campaign_id,
                run_id=message.run_id,
                step=message.step,
                channel=message.channel,
                status=status,
                sent_at=self.now,
                provider=provider,
                provider_id=provider_id,
                code=code,
                variant=self.request.variant,
            )
        )


EMAIL_FOOTER = "\n\n--\n退订或管理消息偏好 · Unsubscribe or manage your preferences: "


@dataclass(frozen=True)
class LinkTracking:
    """Links in rendered messages become `{base_url}/r/{token}`: the click is recorded, then redirected. An SMS's
    become `{base_url}/r/{code}` (9 characters, stored: `cdp.connectors.short_links`), as SMS is billed per segment;
    without a short-link store an SMS's links are sent as written."""

    base_url: str
    secret: str
    allowed_hosts: tuple[str, ...] = ()
    short_links: ShortLinks | None = None
    now: Callable[[], datetime] = utc_now

    def wrap(
        self,
        text: str,
        message_id: str,
        request: SendBatchRequest,
        channel: str,
        address_key: str,
        brand_id: str,
        codes: dict[str, str] | None = None,
    ) -> str:
        """`codes`: the message's short codes by target, so a link in its text and in a template variable is one."""
        if channel not in TRACKED_CHANNELS or (channel == "sms" and self.short_links is None):
            return text
        store, known = self.short_links, codes if codes is not None else {}

        def short(target: str, token: str) -> str:
            if target not in known and store is not None:
                known[target] = store.shorten(token, self.now())
            return known[target]

        shorten = short if channel == "sms" else None
        own = self.base_url.rstrip("/")
        return wrap_links(
            text,
            base_url=self.base_url,
            secret=self.secret,
            message_id=message_id,
            channel=channel,
            identifier_key=address_key,
            brand_id=brand_id,
            campaign_id=request.campaign_id,
            allowed_hosts=self.allowed_hosts,
            html_text=False,
            shorten=shorten,
            untracked=(f"{own}{PREFERENCES_PATH}",),  # a look at one's preferences is no click on the offer
        )

    def preference_link(self, message: OutboundMessage) -> str | None:
        """The message's link to its person's preference centre (`cdp.channels.preference_links`), or None on a
        channel a person has no preferences for (webhooks)."""
        if message.channel not in PREFERENCE_CHANNELS:
            return None
        link = PreferenceLink(
            brand_id=message.brand_id,
            person_id=message.person_id,
            expires_at=self.now() + PREFERENCE_VALIDITY,
            channel=message.channel,
            message_id=message.message_id,
        )
        return preference_url(self.base_url, mint_preference_token(link, self.secret))


def _pay_messages(request: SendBatchRequest, result: SendBatchResult, spending: MessageSpending | None) -> None:
    """The messages this attempt sent, paid from the run's message plan. The op id is the attempt's own: a retried
    batch sends (and pays) only what the attempt before it did not."""
    budget = request.budget
    if spending is None or budget is None or budget.pool_id is None or not request.brand_id:
        return
    cost = budget.cost_of_sent(result.by_channel)
    persons = request.person_ids or []
    run = plan_run(request, persons[0]) if len(persons) == 1 else request.run_id  # a journey sends one person each
    if not cost:
        return
    try:
        spending.spend(request.brand_id, run, budget.pool_id, cost, f"msg:{uuid.uuid4().hex}")
    except CdpError as exc:  # the messages have left: failing the batch now would resend nothing and pay nothing
        logger.error("a batch's message cost was not committed", run_id=request.run_id, cost=cost, error=str(exc))


def send_batch(
    request: SendBatchRequest,
    profiles: ProfileReader,
    annotator: ProfileAnnotator,
    ledger: SendLedger,
    channels: Mapping[str, Channel],
    now: datetime,
    batches: BatchReader | None = None,
    links: LinkTracking | None = None,
    switch: StopSwitch | None = None,
    contact: ContactRules | None = None,
    offers: OfferIssuer | None = None,
    spending: MessageSpending | None = None,
    log: MessageLog | None = None,
    dead_addresses: DeadAddresses | None = None,
    time_left: Callable[[], float] | None = None,
    report: Callable[[SendBatchResult], None] | None = None,
) -> SendBatchResult:
    """Deliver the batch; one person's failure never loses the others. Raises ChannelError only when nothing of the
    batch was delivered and something failed (so the state machine retries); failed sends stay claimable.

    `time_left`: seconds the invocation has left. A provider's rate limit makes a big batch wait for its places; once
    less than `SEND_TIME_RESERVE_S` is left, the persons not reached yet are held (the contact rules' deferrals) and
    ordered again by the next tick through the send queue, so a burst is spread over invocations instead of timing
    out in one (`deferred_rate_limit`).

    `report`: handed the batch's counts once it is done, before a raise too (a channel that failed every message of
    the batch is counted as well)."""
    for name in (request.channel, *request.or_channels):
        if name not in channels:
            raise InvalidInputError(f"no channel is wired for {name!r}", "channel")
    if request.person_ids is not None:
        requested = request.person_ids
    elif batches is not None and request.batch_key is not None:
        requested = batches.person_ids(request.batch_key)
    else:
        raise InvalidInputError("batch_key given but no batch reader is wired", "batch_key")

    batch = _Batch(request, annotator, now, contact)
    batch.result.requested = len(requested)
    held = switch.stopped(request.brand_id) if switch is not None and request.brand_id else None
    if held is not None:  # the emergency brake: nothing of the batch leaves, nothing is claimed to send later
        batch.result.held_stop_switch = len(requested)
        logger.warning("send batch held: the brand's stop switch is on", reason=held, persons=len(requested))
        if report is not None:
            report(batch.result)
        return batch.result
    unique = _unique(requested)
    batch.result.duplicates_skipped += len(requested) - len(unique)
    seen_survivors: set[str] = set()
    current = profiles.get_many(unique)  # the batch's profiles read together (merges followed, as by get)
    batch.dead_addresses = dead_addresses
    if dead_addresses is not None and request.brand_id:  # one read per 100 candidate addresses of the batch
        keys = [key for profile in current.values() for key in candidate_keys(profile, request)]
        batch.dead = dead_addresses.dead(request.brand_id, keys) if keys else set()
    for n, person_id in enumerate(unique):
        if time_left is not None and batch.contact is not None and time_left() < SEND_TIME_RESERVE_S:
            _defer_rest(batch, unique[n:])  # the provider's rate would outlast the invocation: the tick sends them
            break
        _send_one(batch, current.get(person_id), ledger, channels, seen_survivors, links, offers)

    result = batch.result
    _pay_messages(request, result, spending)
    _log_messages(batch, log)
    logger.info("send batch done", **result.model_dump(exclude={"failures", "by_channel", "failed_by_channel"}))
    if report is not None:
        report(result)
    _raise_when_nothing_delivered(batch)
    return result


def _raise_when_nothing_delivered(batch: _Batch) -> None:
    result = batch.result
    if result.failed and not (result.sent or batch.sent_earlier):
        if batch.render_failures == result.failed:  # a broken template: retrying cannot help
            raise InvalidInputError(f"every message failed to render: {result.failures[:3]}", "template")
        if batch.render_failures + batch.permanent_failures < result.failed:  # some may go on a retry
            raise ChannelError(f"all {result.failed} deliveries of the batch failed: {result.failures[:3]}")


def _defer_rest(batch: _Batch, person_ids: list[str]) -> None:
    """Hold the persons of the batch not reached yet, as one request, until the next tick orders them again. A store
    failure fails the batch: its retry skips who was sent (the ledger) and holds the rest again."""
    assert batch.contact is not None
    request = batch.request
    held = {**request.model_dump(), "batch_key": None, "person_ids": person_ids, "held_for": "rate_limit"}
    rest = SendBatchRequest.model_validate(held)
    if batch.contact.deferrals.defer(rest, batch.now + RATE_DEFERRAL):
        batch.result.deferred_rate_limit += len(person_ids)
    else:
        batch.result.duplicates_skipped += len(person_ids)
    logger.warning("send batch held back: the provider's rate outlasts the invocation", held=len(person_ids))


def _log_messages(batch: _Batch, log: MessageLog | None) -> None:
    """The messages that left (or were refused for good) go to the message log, where receipts move them. The
    ledger already holds the truth of what was sent: a failure here is logged, never a resend."""
    if log is None or not batch.logged:
        return
    try:
        log.record(batch.logged)
    except CdpError as exc:
        logger.error("sent messages not recorded in the message log", count=len(batch.logged), error=str(exc))


def choose_channel(
    profile: Profile, request: SendBatchRequest, at: datetime, dead: Collection[str] = ()
) -> tuple[ChannelName, Address] | Literal["suppressed_no_consent", "suppressed_no_address"]:
    """The channel the person gets the message on: the step's channels, their `preferred_channel` tag first when it
    is one of them, then in the order given; the first where they have consent for the purpose and an address.
    Otherwise why not (no consent anywhere, or consent but no address)."""
    options: list[ChannelName] = list(dict.fromkeys([request.channel, *request.or_channels]))
    preferred = profile.tags.get(PREFERRED_CHANNEL_TAG)
    if preferred is not None and preferred.value in options:
        options.sort(key=lambda name: name != preferred.value)
    consented = False
    for name in options:
        if not profile.has_consent(name, at, request.purpose):
            continue
        consented = True
        address = find_address(profile, name, dead)
        if address is not None:
            return name, address
    return "suppressed_no_address" if consented else "suppressed_no_consent"


def _send_one(
    batch: _Batch,
    profile: Profile | None,
    ledger: SendLedger,
    channels: Mapping[str, Channel],
    seen_survivors: set[str],
    links: LinkTracking | None = None,
    offers: OfferIssuer | None = None,
) -> None:
    request, result = batch.request, batch.result
    if profile is None:
        result.unknown_person += 1
        return
    # Two requested ids merged into one person are one person: the ledger key is the surviving id.
    person_id = profile.person_id
    if request.brand_id and profile.brand_id != request.brand_id:  # merged into another brand's person since selected
        result.unknown_person += 1
        logger.warning("person now belongs to another brand: not sent", person_id=person_id)
        return
    if person_id in seen_survivors:
        result.duplicates_skipped += 1
        return
    seen_survivors.add(person_id)
    message_id = message_id_for(request.campaign_id, request.step, person_id)
    if _excluded(batch, profile, message_id):
        return
    chosen = choose_channel(profile, request, batch.now, batch.dead)
    if chosen == "suppressed_no_consent":
        result.suppressed_no_consent += 1
        batch.record(person_id, message_id, chosen)
        return
    if chosen == "suppressed_no_address":
        result.suppressed_no_address += 1
        batch.record(person_id, message_id, chosen)
        return
    name, address = chosen
    rules = batch.contact if policed(batch) else None  # a test send is for the seed list only
    until = rules.quiet_until(profile, batch.now) if rules is not None else None
    if rules is not None and until is not None:  # quiet hours where they are: sent when they end
        held = {**request.model_dump(), "batch_key": None, "person_ids": [person_id], "held_for": "quiet_hours"}
        alone = SendBatchRequest.model_validate(held)
        if rules.deferrals.defer(alone, until):
            result.deferred_quiet_hours += 1
        else:  # an earlier attempt of the batch held it: counted then
            result.duplicates_skipped += 1
        return
    draft = OutboundMessage(
        message_id=message_id,
        campaign_id=request.campaign_id,
        run_id=request.run_id,
        step=request.step,
        channel=name,
        person_id=person_id,
        brand_id=profile.brand_id,
        address=address.value,
        address_scope=address.scope,
        body="",
        coupon_id=request.offer.reference if request.offer else None,
        purpose=request.purpose,
        created_at=batch.now,
    )
    compose: Callable[[], OutboundMessage] = _Composer(batch, profile, draft, address_key(name, address), links, offers)
    if request.offer is None or request.offer.offer_id is None:  # nothing to issue: a bad template claims nothing
        try:
            ready = compose()
        except TemplateRenderError as exc:
            batch.render_failures += 1
            batch.fail(person_id, message_id, exc.message, channel=name)
            return
        except CdpError as exc:  # a short link could not be stored: nothing claimed, a retry composes it again
            batch.fail(person_id, message_id, f"composing the message failed: {exc}", channel=name)
            return
        compose = lambda: ready  # noqa: E731 - composed already
    ahead = rules.ahead(profile, request.campaign_id, request.priority, batch.now) if rules is not None else []
    _deliver(batch, draft, compose, ledger, channels[name], profile.brand_id, ahead)


def _capped(
    batch: _Batch, message: OutboundMessage, caps: Sequence[FrequencyCap], ahead: Sequence[PlannedSend]
) -> str | None:
    """Record the send in the person's contact history, or say (and count) why the caps keep it back."""
    assert batch.contact is not None
    person_id = message.person_id
    refused = batch.contact.ledger.reserve(message.brand_id, person_id, message.channel, batch.now, caps, ahead)
    if refused is None:
        return None
    if refused.yielded_to is None:
        batch.result.suppressed_frequency_cap += 1
        batch.record(person_id, message.message_id, "suppressed_frequency_cap", channel=message.channel)
        return "suppressed_frequency_cap"
    batch.result.suppressed_priority += 1
    batch.record(person_id, message.message_id, "suppressed_priority", channel=message.channel)
    logger.info("cap room kept for a higher priority", person_id=person_id, yielded_to=refused.yielded_to)
    return "suppressed_priority"


def policed(batch: _Batch) -> bool:
    """Whether the contact policy's caps and priorities apply: marketing, not a test send to seeds."""
    return batch.contact is not None and batch.request.purpose == "marketing" and not batch.request.test


def _excluded(batch: _Batch, profile: Profile, message_id: str) -> bool:
    """The global control group or a suppression list: no marketing at all (recorded)."""
    request, result = batch.request, batch.result
    excluded = batch.contact.excluded(profile) if batch.contact is not None and request.purpose == "marketing" else None
    if request.test and excluded == "global_control":
        excluded = None  # a seed (staff) may fall in the control group; a suppression list still holds for tests
    if excluded is None:
        return False
    if excluded == "global_control":
        result.suppressed_global_control += 1
    else:
        result.suppressed_list += 1
    batch.record(profile.person_id, message_id, f"suppressed_{excluded}")
    return True


@dataclass(frozen=True)
class _Composer:
    """The message as it leaves: the step's catalog offer issued to the person (once per message id), then the
    template rendered with its code; called only once the claim and the caps let the message go."""

    batch: _Batch
    profile: Profile
    draft: OutboundMessage
    address_key: str
    links: LinkTracking | None
    offers: OfferIssuer | None
    short_codes: dict[str, str] = field(default_factory=dict)  # an SMS's links by target: one code each

    def __call__(self) -> OutboundMessage:
        request, draft, profile = self.batch.request, self.draft, self.profile
        offer = request.offer.model_dump(mode="json") if request.offer else None
        if request.offer is not None and request.offer.offer_id is not None:
            if self.offers is None:
                raise OfferNotIssuedError("no offer issuer is wired for catalog offers")
            # rendered first with a stand-in code: a template that cannot render issues nothing
            stand_in = {**(offer or {}), "code": "X" * 12, "valid_until": self.batch.now.isoformat()}
            self._render(stand_in)
            offer_id = request.offer.offer_id
            # out of the plan the run's selection (or the journey entry) reserved (cdp.campaigns.journeys)
            plan = plan_id_for(plan_run(request, draft.person_id), offer_id)
            issued = self.offers.issue(profile.brand_id, offer_id, draft.person_id, offer_issue_id(request), plan)
            offer = {**(offer or {}), "code": issued.code, "valid_until": issued.valid_until.isoformat()}
        return self._render(offer)

    def _render(self, offer: dict[str, Any] | None) -> OutboundMessage:
        request, draft, profile = self.batch.request, self.draft, self.profile
        preferences = self.links.preference_link(draft) if self.links is not None else None
        context = template_context(profile, request, self.batch.now.date()) | {
            "offer": offer,
            "preferences_url": preferences,
        }
        template = request.template
        subject = render(template.subject, context) if template.subject else None
        body = self._wrap(render(template.body, context))
        update: dict[str, Any] = {"subject": subject, "body": body}
        if draft.channel == "email" and request.purpose == "marketing" and preferences is not None:
            # every marketing e-mail carries its preference link: in List-Unsubscribe, and in the text
            update["unsubscribe_url"] = preferences
            if preferences not in body:
                update["body"] = f"{body}{EMAIL_FOOTER}{preferences}"
        if draft.channel == "sms" and template.sms is not None:  # a China provider's registered template
            params = {name: render(source, context) for name, source in template.sms.params.items()}
            if self.links is not None:  # a link passed as a variable is shortened and tracked like one in the text
                params = {name: self._wrap(value) for name, value in params.items()}
            update.update(template_ref=template.sms.code, sign_name=template.sms.sign_name, fields=params)
        if draft.channel == "inapp" and template.link is not None:  # where a tap on the in-app message leads
            update["link"] = render(template.link, context)
        if draft.channel == "wechat" and template.wechat is not None:
            update.update(
                template_ref=template.wechat.template_id,
                fields={name: render(source, context) for name, source in template.wechat.fields.items()},
                link=template.wechat.page or template.wechat.url,
            )
        return draft.model_copy(update=update)

    def _wrap(self, text: str) -> str:
        if self.links is None:
            return text
        draft = self.draft
        return self.links.wrap(
            text,
            draft.message_id,
            self.batch.request,
            draft.channel,
            self.address_key,
            self.profile.brand_id,
            self.short_codes,
        )


def _deliver(
    batch: _Batch,
    draft: OutboundMessage,
    compose: Callable[[], OutboundMessage],
    ledger: SendLedger,
    channel: Channel,
    brand_id: str,
    ahead: Sequence[PlannedSend] = (),
) -> None:
    """Claim in the ledger, pass the caps (leaving room for the higher-priority runs `ahead`), compose the message
    (its offer issued only now that it leaves), call the channel, make the record final."""
    result, person_id, message_id, message = batch.result, draft.person_id, draft.message_id, draft
    key = SendKey(message.campaign_id, message.step, person_id)
    try:
        claim = ledger.claim(key, message_id, message.run_id, batch.now)
    except StoreError as exc:  # nothing was sent: a rerun claims it again
        batch.fail(person_id, message_id, str(exc))
        return
    if claim.outcome is ClaimOutcome.ALREADY_SENT:
        result.duplicates_skipped += 1
        batch.sent_earlier += 1
        return
    if claim.outcome is ClaimOutcome.FAILED_FOR_GOOD:  # not delivered: it must not hide the others' failures
        result.duplicates_skipped += 1
        batch.final_earlier += 1
        return
    if claim.outcome is ClaimOutcome.IN_FLIGHT or claim.attempt_id is None:
        result.in_flight_skipped += 1
        batch.sent_earlier += 1
        return
    if claim.taken_over:
        logger.warning("took over a crashed send", person_id=person_id, message_id=message_id)
    caps = batch.contact.caps(brand_id) if batch.contact is not None and policed(batch) else []
    if caps and _kept_back(batch, message, caps, ahead, ledger, key, claim.attempt_id):
        return
    withdraw = partial(_withdraw, batch, ledger, key, claim.attempt_id, draft, brand_id, bool(caps))
    try:
        message = compose()
    except CdpError as exc:  # nothing left: the claim and the cap place go back
        _not_composed(batch, draft, exc)
        withdraw()
        return
    try:
        receipt = channel.send(message)
    except DeliveryRejected as exc:
        batch.fail(person_id, message_id, str(exc), channel=message.channel)
        if exc.permanent:  # refused for good: final in the ledger and the log, its cap place given back
            _refused_for_good(batch, ledger, key, claim.attempt_id, message, exc, bool(caps))
        else:
            withdraw()  # certainly not sent: a retry may send at once
        return
    except ChannelError as exc:
        # Outcome unknown: the pending record keeps its lease, so no retry within the lease can send a second time.
        batch.fail(person_id, message_id, str(exc), channel=message.channel)
        return
    try:
        ledger.mark_sent(key, claim.attempt_id, receipt.provider_id, batch.now)
    except StoreError:
        # Sent, but the record stays pending under its lease: only a rerun after the lease could send it again.
        logger.exception("sent but not marked in the ledger", person_id=person_id, message_id=message_id)
    result.sent += 1
    # Keyed by the requested channel (what the campaign pays for), even when the local runtime routes it to the outbox.
    result.by_channel[message.channel] = result.by_channel.get(message.channel, 0) + 1
    batch.record(person_id, message_id, "sent", receipt.provider_id, channel=message.channel)
    batch.log(message, "sent", receipt.provider, receipt.provider_id)


def _not_composed(batch: _Batch, draft: OutboundMessage, exc: CdpError) -> None:
    person_id, message_id = draft.person_id, draft.message_id
    if isinstance(exc, TemplateRenderError):
        batch.render_failures += 1
        batch.fail(person_id, message_id, exc.message, channel=draft.channel)
    elif isinstance(exc, OfferNotIssuedError):
        batch.result.suppressed_offer += 1
        batch.record(person_id, message_id, "suppressed_offer", channel=draft.channel)
        logger.info("offer not issued: message not sent", person_id=person_id, reason=str(exc))
    else:  # the offer store failed or lost to concurrent issues: a retry of the batch sends it
        batch.fail(person_id, message_id, f"issuing the step's offer failed: {exc}", channel=draft.channel)


def _refused_for_good(
    batch: _Batch,
    ledger: SendLedger,
    key: SendKey,
    attempt_id: str,
    message: OutboundMessage,
    exc: DeliveryRejected,
    capped: bool,
) -> None:
    code = exc.code or "refused"
    batch.result.failed_for_good += 1
    batch.permanent_failures += 1
    try:
        ledger.mark_failed(key, attempt_id, code, batch.now)
    except StoreError:  # stays pending under its lease: a later attempt asks the provider again, and is refused
        logger.exception("a send refused for good is not final in the ledger", person_id=message.person_id)
    if batch.contact is not None and capped:
        batch.contact.ledger.release(message.brand_id, message.person_id, message.channel, batch.now)
    batch.log(message, "failed", code=code)
    if exc.invalid_address and batch.dead_addresses is not None:  # no later message goes there
        dead = address_key(message.channel, Address(message.address, message.address_scope))
        try:
            batch.dead_addresses.bury(message.brand_id, dead, code, batch.now)
            batch.dead.add(dead)
        except CdpError:
            logger.exception("a dead address was not recorded", person_id=message.person_id)


def _withdraw(
    batch: _Batch,
    ledger: SendLedger,
    key: SendKey,
    attempt_id: str,
    draft: OutboundMessage,
    brand_id: str,
    capped: bool,
) -> None:
    """A message that certainly did not leave: its claim and its place under the caps are given back."""
    _release(ledger, key, attempt_id, batch.now, draft.person_id)
    if batch.contact is not None and capped:
        batch.contact.ledger.release(brand_id, draft.person_id, draft.channel, batch.now)


def _kept_back(
    batch: _Batch,
    message: OutboundMessage,
    caps: Sequence[FrequencyCap],
    ahead: Sequence[PlannedSend],
    ledger: SendLedger,
    key: SendKey,
    attempt_id: str,
) -> bool:
    """Whether the caps keep the message back (counted); its claim goes back, or, for one journey entry's step, is
    made final in the same write, so a redelivered order is not counted twice."""
    why = _capped(batch, message, caps, ahead)
    if why is None:
        return False
    if journey_place(message.step) is None:
        _release(ledger, key, attempt_id, batch.now, message.person_id)
        return True
    try:
        ledger.mark_failed(key, attempt_id, why, batch.now)
    except StoreError:  # stays pending under its lease: an attempt after it asks the caps again
        logger.exception("a send kept back is not final in the ledger", person_id=message.person_id)
    return True


def _release(ledger: SendLedger, key: SendKey, attempt_id: str, now: datetime, person_id: str) -> None:
    try:
        ledger.release(key, attempt_id, now)
    except StoreError:
        logger.exception("lease not released; the send waits for the lease to expire", person_id=person_id)


_JOURNEY_ENTRY = re.compile(r"^(e\d+)-")


def plan_run(request: SendBatchRequest, person_id: str) -> str:
    """What the plans a send draws on are named by: the campaign run, or a journey's run with its entry and person
    (`cdp.campaigns.journeys.entry_plan_run`)."""
    entry = _JOURNEY_ENTRY.match(request.step)
    return f"{request.run_id}:{entry.group(1)}:{person_id}" if entry else request.run_id


def offer_issue_id(request: SendBatchRequest) -> str:
    """What a catalog offer is issued under for each recipient (with the person: cdp.offers.service): once per
    campaign run, or per journey entry (its steps are `e{n}-...`), so a follow-up repeats the first touch's code
    instead of issuing a second coupon."""
    entry = _JOURNEY_ENTRY.match(request.step)
    return f"{request.run_id}:{entry.group(1)}" if entry else request.run_id
