"""Payloads of the campaign state machine: the request, the tag condition, the step commands and their results.

The send step's payload (`cdp.channels.models.SendBatchRequest`) is built by the ASL from the normalized request
this module returns, so `Touch` mirrors its template/offer fields (the provider template parts are the channels').
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.campaigns.attribution import Attributed
from cdp.campaigns.measurement import Lift, MeanDifference
from cdp.campaigns.targeting import Targeting, TargetingReport
from cdp.channels.models import DEFAULT_PRIORITY, MessageBudget, SmsProviderTemplate, WeChatMessageTemplate
from cdp.ingest.events import Token, UtcDatetime
from cdp.offers.service import OfferSpend
from cdp.profile.models import Profile

CampaignChannel = Literal["sms", "email", "push", "wechat", "webhook", "outbox", "inapp"]
ConsentChannel = Literal["sms", "email", "push", "wechat", "webhook", "outbox", "inapp", "all"]
TagScalar = str | int | bool
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]

TOUCH1 = "touch1"
TOUCH2 = "touch2"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- the audience condition ---------------------------------------------------------------------------------


class TagCondition(_Frozen):
    """`{tag, equals}` or `{tag, in: [...]}`: one test on one tag's current value (a missing tag never matches)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tag: str = Field(min_length=1, max_length=64)
    equals: TagScalar | None = None
    in_: list[TagScalar] | None = Field(default=None, alias="in", min_length=1, max_length=100)

    @model_validator(mode="after")
    def _exactly_one_test(self) -> TagCondition:
        if (self.equals is None) == (self.in_ is None):
            raise ValueError(f"tag condition on {self.tag!r} needs exactly one of 'equals' or 'in'")
        return self

    def matches(self, profile: Profile) -> bool:
        tag = profile.tags.get(self.tag)
        if tag is None:
            return False
        allowed = [self.equals] if self.in_ is None else self.in_
        # bool is an int in Python: compare types too, so `equals: 1` never matches a True flag
        return any(type(tag.value) is type(v) and tag.value == v for v in allowed)


class Audience(_Frozen):
    """all_of AND (any_of, when given) AND NOT any(none_of), plus marketing consent on one channel; with
    `audience_id`, also a member of that stored audience package (cdp.audiences): of a dynamic one, by its
    membership tag `audience:<id>`; of a static one, by its latest snapshot (or `snapshot_id`), each member re-resolved
    through merges."""

    audience_id: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="a stored audience (POST /v1/audiences)"
    )
    snapshot_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$",
        description="static audience: this snapshot instead of the latest",
    )
    all_of: list[TagCondition] = Field(default_factory=list, max_length=50)
    any_of: list[TagCondition] = Field(default_factory=list, max_length=50)
    none_of: list[TagCondition] = Field(default_factory=list, max_length=50)
    require_consent_channel: ConsentChannel | None = Field(
        default=None, description="channel whose marketing opt-in is required; defaults to touch1's channel"
    )

    @model_validator(mode="after")
    def _snapshot_needs_audience(self) -> Audience:
        if self.snapshot_id is not None and self.audience_id is None:
            raise ValueError("snapshot_id needs audience_id (the audience whose snapshot it is)")
        return self

    def matches(self, profile: Profile) -> bool:
        """The tag conditions (membership of `audience_id` is checked where the audience is resolved)."""
        return (
            all(c.matches(profile) for c in self.all_of)
            and (not self.any_of or any(c.matches(profile) for c in self.any_of))
            and not any(c.matches(profile) for c in self.none_of)
        )


# ---- touches and budget -------------------------------------------------------------------------------------


class Template(_Frozen):
    """What the person reads (`body`, an e-mail's `subject`) and, for providers that send only registered templates,
    the SMS template code with its variables (`sms`) and the WeChat template with its fields (`wechat`)."""

    subject: str | None = Field(default=None, min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=20_000)
    sms: SmsProviderTemplate | None = None
    wechat: WeChatMessageTemplate | None = None
    link: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="where a tap on an in-app message leads: an https URL or the app's own deep link (inapp)",
    )


class Offer(_Frozen):
    """A catalog offer issued to each recipient as the message leaves (`offer_id`), or a fixed code (`coupon_id`,
    `code`) printed as written; mirrors `cdp.channels.models.Offer`."""

    offer_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    coupon_id: Token | None = None
    code: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _named(self) -> Offer:
        if self.offer_id is None and self.coupon_id is None:
            raise ValueError("an offer names a catalog offer_id, or a coupon_id with its code")
        if self.offer_id is not None and self.code is not None:
            raise ValueError("a catalog offer's code is issued per person: remove `code`")
        return self


class Touch(_Frozen):
    """One message: its channel (or `channels` to choose from: the person's `preferred_channel` tag first, then in
    the order given, the first where they have consent and an address), template, offer and purpose."""

    channel: CampaignChannel
    or_channels: list[CampaignChannel] = Field(
        default_factory=list, max_length=4, description="other channels the person may get it on instead"
    )
    template: Template
    offer: Offer | None = None
    purpose: Literal["marketing", "service"] = Field(
        default="marketing", description="service: an order, delivery or expiry notice (no marketing opt-in needed)"
    )

    @model_validator(mode="after")
    def _email_needs_subject(self) -> Touch:
        if "email" in self.channels and self.template.subject is None:
            raise ValueError("an email template needs a subject")
        if "wechat" in self.channels and self.template.wechat is None:
            raise ValueError("a WeChat message is a template message: give template.wechat {template_id, fields}")
        if self.channel in self.or_channels or len(set(self.or_channels)) != len(self.or_channels):
            raise ValueError("or_channels repeats a channel")
        return self

    @property
    def channels(self) -> list[CampaignChannel]:
        return [self.channel, *self.or_channels]


class Budget(MessageBudget):
    """The cap pays for touch1 (the audience is cut to it); with a `pool_id`, the run reserves every treated person's
    first send and reminder from the pool at selection, and what its messages cost is committed as they leave."""

    def cost_of(self, touch: Touch) -> int:
        """What one message of the touch may cost: its dearest channel (a person may get it on any of them)."""
        return max(self.cost_per_message_minor.get(name, 0) for name in touch.channels)


class RunVariant(_Frozen):
    """An A/B/n arm of a scheduled run: a stable share of the treated gets this first send instead of `touch1`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    share: float = Field(gt=0.0, le=1.0)
    touch1: Touch


def variant_of(campaign_id: str, person_id: str, arms: Sequence[tuple[str, float]]) -> str | None:
    """The person's arm: stable for the campaign, in proportion to the shares (None without arms)."""
    if not arms:
        return None
    digest = hashlib.sha256(f"{campaign_id}:variant:{person_id}".encode()).digest()
    point, edge = int.from_bytes(digest[:8], "big") / 2**64, 0.0
    for name, share in arms:
        edge += share
        if point < edge:
            return name
    return arms[-1][0]


class CampaignRequest(_Frozen):
    campaign_id: Token
    run_id: Token | None = Field(default=None, description="defaults to '{campaign_id}-{execution or time}'")
    brand_id: Token
    audience: Audience = Field(default_factory=Audience)
    score_model: str = Field(default="response", min_length=1, max_length=64)
    touch1: Touch
    touch2: Touch | None = None
    second_touch: bool = Field(default=True, description="send touch2 (when given) to treatment non-converters")
    budget: Budget
    max_recipients: int | None = Field(default=None, ge=0, description="hard cap on audience size (both groups)")
    holdout_fraction: Fraction = 0.1
    batch_size: int = Field(default=500, ge=1, le=500)
    wait_seconds: int = Field(default=3 * 86_400, ge=0, le=365 * 86_400)
    conversion_window_seconds: int = Field(default=14 * 86_400, ge=1, le=365 * 86_400)
    scan_segments: int = Field(default=4, ge=1, le=1000, description="parallel scan segments of the profile store")
    variants: list[RunVariant] = Field(default_factory=list, max_length=10, description="A/B/n arms of the first send")
    targeting: Targeting | None = Field(default=None, description="rank by expected incremental profit (uplift)")
    priority: int = Field(default=DEFAULT_PRIORITY, ge=1, le=100, description="the contact policy's arbitration")

    @model_validator(mode="after")
    def _check(self) -> CampaignRequest:
        if self.variants and abs(sum(v.share for v in self.variants) - 1.0) > 1e-9:
            raise ValueError("the variants' shares must add up to 1")
        touches = [("touch1", self.touch1), ("touch2", self.touch2)]
        touches += [(f"variant {v.name}", v.touch1) for v in self.variants]
        for name, touch in touches:
            if touch is not None and touch.channel not in self.budget.cost_per_message_minor:
                raise ValueError(f"budget.cost_per_message_minor has no cost for {name} channel {touch.channel!r}")
        if self.budget.cost_per_message_minor[self.touch1.channel] == 0:
            raise ValueError("touch1's channel must have a non-zero cost (the budget cut divides by it)")
        return self

    @property
    def consent_channel(self) -> str:
        return self.audience.require_consent_channel or self.touch1.channel

    @property
    def follow_up(self) -> bool:
        return self.second_touch and self.touch2 is not None

    def first_touch(self, variant: str | None) -> Touch:
        """The first send of a treated person of `variant` (the request's touch1 without variants)."""
        return next((v.touch1 for v in self.variants if v.name == variant), self.touch1)

    @property
    def catalog_offers(self) -> list[str]:
        """The catalog offers the run's sends issue (each treated person gets one of each: follow-ups repeat it)."""
        touches = [self.touch1, self.touch2, *(v.touch1 for v in self.variants)]
        return list(dict.fromkeys(t.offer.offer_id for t in touches if t and t.offer and t.offer.offer_id))

    def variant_for(self, person_id: str) -> str | None:
        return variant_of(self.campaign_id, person_id, [(v.name, v.share) for v in self.variants])


# ---- what the store holds -----------------------------------------------------------------------------------


class Member(_Frozen):
    person_id: str
    score: float | None = None
    variant: str | None = Field(default=None, description="a treated person's A/B/n arm")
    uplift: float | None = Field(default=None, description="uplift targeting: the order chance a message adds")
    p_treated: float | None = Field(default=None, description="uplift targeting: the order chance with the message")


class AudienceCounts(_Frozen):
    excluded_contact_policy: int = Field(
        default=0, description="matched, but in the brand's global control group or on a suppression list"
    )
    eligible: int = Field(description="matched the condition and consent, before the budget cut")
    selected: int = Field(description="after the budget and max_recipients cut (treatment + holdout)")
    treatment: int
    holdout: int
    unscored: int = Field(description="selected persons without a score (ranked last)")


class AudienceSource(_Frozen):
    """The stored audience a run selected from, as it was at selection."""

    audience_id: str
    kind: Literal["static", "dynamic"]
    version: int = Field(description="the definition's version at selection")
    snapshot_id: str | None = Field(default=None, description="static: the snapshot whose members were read")
    snapshot_as_of: UtcDatetime | None = None
    snapshot_count: int | None = Field(default=None, description="static: members in the snapshot")
    resolved: int = Field(description="members that resolved to a live person (after merges, deduplicated)")


class AudienceManifest(_Frozen):
    run_id: str
    request: CampaignRequest
    audience: AudienceSource | None = Field(default=None, description="when the request named an audience_id")
    selected_at: UtcDatetime
    sent_at: UtcDatetime = Field(description="reference time of the conversion window, the same for both groups")
    counts: AudienceCounts
    capacity: int = Field(description="recipients the budget pays for")
    budget_reserved_minor: int = Field(description="treatment size x touch1 cost")
    offers_reserved_minor: int = Field(
        default=0, description="the catalog offers' worst case for every treated person, reserved from their pools"
    )
    messages_reserved_minor: int = Field(
        default=0, description="the messages' worst case (first sends and reminders), reserved from the budget's pool"
    )
    currency: str
    batch_keys: list[str]
    batches: list[BatchRef] = Field(default_factory=list, description="the batch keys with each batch's first send")
    targeting: TargetingReport | None = Field(default=None, description="which ranking chose the persons, and why")


class AudienceDocument(_Frozen):
    """`campaigns/{run_id}/audience.json`."""

    manifest: AudienceManifest
    treatment: list[Member]
    holdout: list[Member]


class SendTally(BaseModel):
    """What the campaign reads from each `SendBatchResult` (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    sent: int = Field(default=0, ge=0)
    suppressed_no_consent: int = Field(default=0, ge=0)
    suppressed_no_address: int = Field(default=0, ge=0)
    duplicates_skipped: int = Field(default=0, ge=0)
    held_stop_switch: int = Field(default=0, ge=0, description="not sent: the brand's stop switch was on")
    deferred_quiet_hours: int = Field(default=0, ge=0, description="held until quiet hours end (then sent)")
    deferred_rate_limit: int = Field(default=0, ge=0, description="held for the next tick by the provider's rate")
    suppressed_frequency_cap: int = Field(default=0, ge=0, description="not sent: a frequency cap was reached")
    suppressed_priority: int = Field(default=0, ge=0, description="not sent: cap room kept for a higher priority")
    failed: int = Field(default=0, ge=0)
    by_channel: dict[str, int] = Field(default_factory=dict)

    def __add__(self, other: SendTally) -> SendTally:
        channels = {**self.by_channel}
        for k, v in other.by_channel.items():
            channels[k] = channels.get(k, 0) + v
        return SendTally(
            sent=self.sent + other.sent,
            suppressed_no_consent=self.suppressed_no_consent + other.suppressed_no_consent,
            suppressed_no_address=self.suppressed_no_address + other.suppressed_no_address,
            duplicates_skipped=self.duplicates_skipped + other.duplicates_skipped,
            held_stop_switch=self.held_stop_switch + other.held_stop_switch,
            deferred_quiet_hours=self.deferred_quiet_hours + other.deferred_quiet_hours,
            deferred_rate_limit=self.deferred_rate_limit + other.deferred_rate_limit,
            suppressed_frequency_cap=self.suppressed_frequency_cap + other.suppressed_frequency_cap,
            suppressed_priority=self.suppressed_priority + other.suppressed_priority,
            failed=self.failed + other.failed,
            by_channel=channels,
        )


class GroupOutcome(_Frozen):
    size: int
    converted: int
    revenue_minor: int = Field(description="order totals in the budget currency within the window")
    orders_other_currency: int = 0

    @property
    def rate(self) -> float:
        return self.converted / self.size if self.size else 0.0


class ConversionReport(_Frozen):
    """`campaigns/{run_id}/conversions/{step}.json`: who converted by the time of the check."""

    run_id: str
    step: str
    checked_at: UtcDatetime
    window_end: UtcDatetime
    treatment: GroupOutcome
    holdout: GroupOutcome
    follow_up_persons: int
    follow_up_batch_keys: list[str]


# ---- step commands (the Lambda's input) and results (its output) ---------------------------------------------


class SelectCommand(_Frozen):
    action: Literal["select"]
    request: CampaignRequest
    execution_name: str | None = Field(default=None, max_length=80)


class CheckCommand(_Frozen):
    action: Literal["check"]
    run_id: Token
    step: Token = TOUCH2
    touch1_results: list[SendTally] = Field(default_factory=list)


class SummarizeCommand(_Frozen):
    action: Literal["summarize"]
    run_id: Token
    touch2_results: list[SendTally] = Field(default_factory=list)


class ReleaseCommand(_Frozen):
    """A run failed after its selection: its offer plans give back what they have left (the summary never runs)."""

    action: Literal["release"]
    run_id: Token


CampaignCommand = Annotated[
    SelectCommand | CheckCommand | SummarizeCommand | ReleaseCommand, Field(discriminator="action")
]


class BatchRef(_Frozen):
    batch_key: str
    touch: Touch | None = Field(default=None, description="touch1 batches: the first send (the person's variant)")


class Selection(_Frozen):
    run_id: str
    batches: list[BatchRef]
    counts: AudienceCounts
    sent_at: UtcDatetime
    audience_key: str


class SelectResult(_Frozen):
    """Replaces the state: the normalized request (run_id filled, defaults explicit) and the selection."""

    request: CampaignRequest
    selection: Selection


class CheckResult(_Frozen):
    run_id: str
    step: str
    batches: list[BatchRef]
    treatment_converted: int
    holdout_converted: int
    follow_up_persons: int
    touch1: SendTally
    report_key: str


ROI_DEFINITION = (
    "ROI = (incremental revenue - cost) / cost. Incremental revenue = revenue per treated person minus revenue per "
    "holdout person, times the treated persons; revenue is what orders in the conversion window paid, after "
    "discounts, so coupon discounts are already netted out of it (shown as discounts). Cost = the messages sent at "
    "the budget's price per channel, plus what the run's other offers drawn from budget pools cost by the summary "
    "(red packets paid, points granted, gifts handed over: offer cost). Cost per incremental conversion = cost / "
    "incremental conversions."
)


class CampaignSummary(_Frozen):
    """`campaigns/{run_id}/summary.json`. Money is integer minor units of `currency`; rates are plain ratios."""

    run_id: str
    campaign_id: str
    currency: str
    summarized_at: UtcDatetime
    treatment: GroupOutcome
    holdout: GroupOutcome
    treatment_rate: float
    holdout_rate: float
    absolute_lift: float | None = Field(description="None without a holdout")
    incremental_conversions: float | None
    revenue_per_person_treatment_minor: int
    revenue_per_person_holdout_minor: int | None
    incremental_revenue_minor: int | None = Field(description="treatment revenue - holdout revenue scaled to size")
    conversion_lift: Lift | None = Field(
        default=None, description="conversion against the holdout with 95% intervals, p-value and a verdict"
    )
    variants: dict[str, Lift] = Field(default_factory=dict, description="each A/B/n arm against the holdout")
    messages: dict[str, SendTally] = Field(description="send tallies per step")
    messages_by_channel: dict[str, int]
    cost_minor: int = Field(description="messages + offer cost")
    touch1_cost_minor: int
    touch2_cost_minor: int
    offer_cost_minor: int = Field(default=0, description="the run's offers other than coupons (see roi_definition)")
    offers: list[OfferSpend] = Field(default_factory=list, description="each budgeted offer of the run and its cost")
    budget_minor: int
    roi: float | None = Field(description="(incremental revenue - cost) / cost; None when nothing was spent")
    roi_definition: str = Field(default=ROI_DEFINITION, description="what `roi` and its parts mean")
    cost_per_incremental_conversion_minor: int | None = Field(
        default=None, description="cost / incremental conversions; None when the campaign added none"
    )
    revenue_lift: MeanDifference | None = Field(
        default=None, description="revenue per person (minor units), treatment vs holdout, with its 95% interval"
    )
    attribution: Attributed | None = Field(
        default=None, description="the treated persons' orders credited to this campaign, by evidence"
    )
    funnel: Funnel | None = None
    display: dict[str, str] = Field(default_factory=dict, description="the money fields formatted in the currency")


SUPPRESSIONS = (
    "suppressed_no_consent",
    "suppressed_no_address",
    "suppressed_frequency_cap",
    "suppressed_priority",
    "held_stop_switch",
)


class FunnelStep(_Frozen):
    """One send step's messages: what left, what the contact policy kept back and why, what failed."""

    sent: int
    suppressed: dict[str, int] = Field(description="reason -> messages not sent for it")
    deferred: int = Field(description="held by quiet hours or a provider's rate, then ordered again by the tick")
    failed: int


class JourneyFunnelStep(FunnelStep):
    """One step of a journey, read as a run's funnel step (`FunnelStep`: its messages, every entry's), with the
    persons who reached it and what its messages' receipts say."""

    step: str = Field(description="where it is in the definition: steps[1], variants[0].steps[0], paths.reminder[0]")
    kind: str | None = Field(
        description="send, wait, wait_for, branch, split, goto or exit; None: a step of an earlier version that the "
        "latest has no more"
    )
    channel: str | None = Field(default=None, description="a send's channel (the first it tries)")
    reached: int = Field(description="treated persons whose latest entry reached the step (once, however many laps)")
    reached_holdout: int | None = Field(
        default=None, description="holdout persons whose latest entry reached it (sent nothing; None in an arm's)"
    )
    deferred: int = Field(
        description="held now by quiet hours or a provider's rate; once ordered again it counts as what became of it"
    )
    receipts: dict[str, int] = Field(
        default_factory=dict, description="status -> the step's messages showing it now (cdp.channels.lifecycle)"
    )
    delivered: int = Field(default=0, description="messages shown delivered or further (an open or a click proves it)")
    opened: int = Field(default=0, description="messages shown opened or clicked (an unsubscribe later hides an open)")
    clicked: int = Field(default=0, description="messages shown clicked")


class Funnel(_Frozen):
    """From the audience to revenue. Message receipts (delivered, opened, clicked) are read live with the results
    (`GET /v1/campaigns/{id}/results`): they keep arriving after the summary."""

    eligible: int = Field(description="matched the audience and consent before the budget cut")
    excluded_contact_policy: int = Field(description="global control group or a suppression list")
    selected: int = Field(description="after the budget cut: treatment + holdout")
    treatment: int
    holdout: int
    steps: dict[str, FunnelStep]
    offers_redeemed: int = Field(description="treated persons' orders that redeemed the campaign's coupon")
    purchased: int = Field(description="treated persons with an order credited to the campaign")
    credited_orders: int
    credited_revenue_minor: int
    converted_any: int = Field(description="treated persons with any order in the window (the lift's count)")


def funnel_step(tally: SendTally) -> FunnelStep:
    return FunnelStep(
        sent=tally.sent,
        suppressed={name: getattr(tally, name) for name in SUPPRESSIONS if getattr(tally, name)},
        deferred=tally.deferred_quiet_hours + tally.deferred_rate_limit,
        failed=tally.failed,
    )


class SummarizeResult(_Frozen):
    """The state machine's final output: small, the full summary lives in S3."""

    run_id: str
    summary_key: str
    treatment: int
    holdout: int
    treatment_converted: int
    holdout_converted: int
    incremental_revenue_minor: int | None
    cost_minor: int
    roi: float | None


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict with aliases (`in`), the shape the state machine and S3 documents use."""
    return model.model_dump(mode="json", by_alias=True)
