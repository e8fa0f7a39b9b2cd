"""Triggered journeys: an interpreter with each person's place in DynamoDB, woken by events and by the schedule's tick.

A live campaign with a `trigger` enters a person when an event of that type is applied to their profile (and they
meet its audience conditions), then runs its steps for them: a send is ordered at once (the send function delivers
it, exactly once per entry and step), a wait stores when to go on and costs nothing until then. An event in
`exit_on` (the conversion) takes the person out at once; so does the end of the steps. A stable share of the persons
(`holdout`) goes through the same journey without any send, so the journey's effect is measured against them.

Why an interpreter and not one Step Functions execution per person: a standard execution bills each state transition
($25 per 1M), about ten per journey, while a wait here is one timer item (see the README's cost table); Step
Functions keeps running the scheduled campaigns, where one execution serves the whole audience.

Each change of a person's place checks the one it read (`rev`), so a tick and an event racing for one person cannot
both move them. A send is ordered before the move is stored: if storing fails the move is retried and the same send
ordered again, which the send ledger delivers once (its key names the entry and the step).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from cdp import topology
from cdp.budgets.ledger import BudgetExhaustedError
from cdp.campaigns.catalog import CampaignCatalog, CampaignState, StoredVersion
from cdp.campaigns.definition import MAIN_PATH, CampaignDefinition, CorrelationKey
from cdp.campaigns.measurement import Lift, compare
from cdp.campaigns.models import JourneyFunnelStep
from cdp.campaigns.ports import OfferPlans
from cdp.channels.contact import Deferrals, exclusion, person_zone, zone_of
from cdp.channels.models import SendBatchRequest, journey_place
from cdp.errors import ConflictError
from cdp.observability import logger
from cdp.org import OrgDirectory
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now
from cdp.tags.selection import AUDIENCE_PREFIX

Group = Literal["treatment", "holdout"]
JourneyStatus = Literal["active", "converted", "completed", "stopped", "out_of_budget", "unresponsive"]
HEARD_ATTEMPTS = 3
PAUSE_RECHECK = timedelta(hours=1)  # a paused journey's due steps look again this much later
LIVE_CACHE_S = 60.0
MAX_MOVES = 100  # steps run for one person without a wait: validation refuses loops, this stops a bad one anyway
MAX_SEEN = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JourneyState(_Frozen):
    """One person's place in one journey (their latest entry)."""

    brand_id: str
    campaign_id: str
    person_id: str
    version: int = Field(description="the version they entered: they finish on it whatever is defined later")
    group: Group
    variant: str | None = Field(default=None, description="the treated person's A/B/n arm (None without variants)")
    status: JourneyStatus
    path: str = Field(default=MAIN_PATH, description="the path they are on (`main`: the steps)")
    step: int = Field(ge=0, description="the next step to run on the path")
    entries: int = Field(ge=1, description="how many times they entered (this is the latest)")
    entered_at: datetime
    entered_by: str = Field(description="the event that entered them (a redelivery of it enters nobody)")
    next_at: datetime | None = Field(default=None, description="when a wait is up")
    exited_at: datetime | None = None
    converted_at: datetime | None = Field(default=None, description="an exit_on event came (they may go on a path)")
    seen: list[str] = Field(default_factory=list, description="event types the journey listens to, since entering")
    correlation: dict[str, list[str]] = Field(default_factory=dict, description="the trigger event's values")
    unanswered: int = Field(default=0, ge=0, description="sends since the last response")
    ordered: list[str] = Field(
        default_factory=list, description="the send steps ordered in this entry (a loop's laps get their own keys)"
    )
    pending: bool = Field(
        default=False,
        description="the step at `step` has not run: an awaited event or a conversion came while the journey was "
        "paused, and it runs when the journey runs again",
    )
    passed: list[str] | None = Field(
        default=None,
        description="the steps this entry reached, each once, by their place (`s1`, `reminder-s0`); None on a place "
        "stored before it was kept (`reached` then reads its sends)",
    )
    rev: int = Field(default=1, ge=1)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def reached(self) -> list[str]:
        """The places of the steps this entry reached (an entry older than `passed`: those of its sends)."""
        return self.passed if self.passed is not None else list(dict.fromkeys(self.ordered))

    @property
    def converted(self) -> bool:
        return self.converted_at is not None or self.status == "converted"


class TimerRef(_Frozen):
    brand_id: str
    campaign_id: str
    person_id: str
    at: datetime


class JourneyStore(ABC):
    """Persons' places, the timers of their waits, who is in which journey, and each journey's spend (DynamoDB on
    AWS: `cdp.campaigns.dynamodb.DynamoJourneyStore`)."""

    @abstractmethod
    def get(self, brand_id: str, campaign_id: str, person_id: str) -> JourneyState | None:
        """The person's place (their latest entry), or None when they never entered."""

    @abstractmethod
    def save(self, state: JourneyState, previous: JourneyState | None) -> None:
        """Store the place if it is still `previous` (None: no place yet, or `previous.rev` unchanged), moving its
        timer and its membership with it. ConflictError otherwise."""

    @abstractmethod
    def due(self, until: datetime, limit: int) -> list[TimerRef]:
        """Waits that are up by `until`, oldest first."""

    @abstractmethod
    def memberships(self, brand_id: str, person_id: str) -> list[str]:
        """The campaigns whose journey the person is in now."""

    @abstractmethod
    def spend(self, brand_id: str, campaign_id: str, cost_minor: int, cap_minor: int) -> bool:
        """Add `cost_minor` to the journey's spend unless that would pass `cap_minor` (then False)."""

    @abstractmethod
    def places(self, brand_id: str, campaign_id: str) -> list[JourneyState]:
        """Everyone's place in the journey (results)."""

    @abstractmethod
    def spent(self, brand_id: str, campaign_id: str) -> int:
        """What the journey's sends have cost so far (minor units of its budget's currency)."""

    @abstractmethod
    def tally(self, brand_id: str, campaign_id: str, outcomes: Mapping[str, int], step: TallyKey | None = None) -> None:
        """Add what became of a batch of the journey's messages (sent, suppressed_frequency_cap, ...), in one
        atomic write, under the step they were sent from (None: the journey's alone)."""

    @abstractmethod
    def step_outcomes(self, brand_id: str, campaign_id: str) -> dict[TallyKey | None, dict[str, int]]:
        """What became of the journey's messages so far, per step they were sent from (None: tallied without one,
        e.g. before steps were kept)."""

    def outcomes(self, brand_id: str, campaign_id: str) -> dict[str, int]:
        """What became of the journey's messages so far (every step's together)."""
        return total_outcomes(self.step_outcomes(brand_id, campaign_id).values())


@dataclass(frozen=True)
class TallyKey:
    """The step a journey's messages were sent from: the version, the place on its paths (`s1`, `reminder-s0`) and
    the A/B/n arm (None without variants)."""

    version: int
    place: str
    variant: str | None = None


JOURNEY_RUN_SUFFIX = "-journey"
_JOURNEY_RUN = re.compile(rf"-v(?P<version>\d+){JOURNEY_RUN_SUFFIX}$")
OUTCOMES = (
    "sent",
    "failed",
    "suppressed_no_consent",
    "suppressed_no_address",
    "suppressed_frequency_cap",
    "suppressed_priority",
    "suppressed_global_control",
    "suppressed_list",
    "suppressed_offer",
    "deferred_quiet_hours",
    "deferred_rate_limit",
    "held_stop_switch",
)


def journey_outcomes(run_id: str, result: BaseModel) -> dict[str, int]:
    """A send batch's outcomes to tally, when it is a journey's (its run id ends in -journey); else nothing."""
    if not run_id.endswith(JOURNEY_RUN_SUFFIX):
        return {}
    counts = result.model_dump()
    return {name: int(counts[name]) for name in OUTCOMES if counts.get(name)}


def tally_key(request: SendBatchRequest) -> TallyKey | None:
    """The step a journey's send order is tallied under; None when it is no journey's (or not of a journey step's
    form: then tallied for the journey alone)."""
    run = _JOURNEY_RUN.search(request.run_id)
    place = journey_place(request.step)
    if run is None or place is None:
        return None
    return TallyKey(int(run["version"]), place, request.variant)


def total_outcomes(tallies: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for outcomes in tallies:
        for name, n in outcomes.items():
            out[name] = out.get(name, 0) + n
    return out


class SendOrders(ABC):
    """Where a journey's sends go to be delivered (the bus, to the send function's queue)."""

    @abstractmethod
    def order(self, requests: list[SendBatchRequest]) -> None:
        """Hand the sends over for delivery (raises when they could not be handed over: nothing moves on)."""


class JourneySends(Publishable):
    """Send orders of journeys, packed (one bus entry for many), for the send function's queue."""

    event_name: ClassVar[str] = topology.JOURNEY_SENDS
    event_source: ClassVar[str] = topology.SOURCE_CAMPAIGNS

    requests: list[SendBatchRequest] = Field(min_length=1)


MAX_ORDER_BYTES = 192 * 1024


class PublishedSendOrders(SendOrders):
    """Orders go on the bus in as few entries as fit (EventBridge bills per 64 KB chunk of an entry)."""

    def __init__(self, publisher: EventPublisher, correlation_id: str = "journey") -> None:
        self._publisher = publisher
        self.correlation_id = correlation_id

    def order(self, requests: list[SendBatchRequest]) -> None:
        packs: list[list[SendBatchRequest]] = [[]]
        size = 0
        for request in requests:
            length = len(request.model_dump_json())
            if packs[-1] and size + length > MAX_ORDER_BYTES:
                packs.append([])
                size = 0
            packs[-1].append(request)
            size += length
        self._publisher.publish([JourneySends(requests=pack) for pack in packs], self.correlation_id)


class DeferredSend(_Frozen):
    """A send held back by quiet hours (`cdp.channels.contact`): ordered again at `until`."""

    until: datetime
    request: SendBatchRequest


class DeferredSends(Deferrals):
    """Sends held back by quiet hours: kept by the send step (`defer`), ordered again by the tick (`due`, `done`)."""

    @abstractmethod
    def due(self, until: datetime, limit: int) -> list[DeferredSend]:
        """Held sends whose time has come by `until`, oldest first."""

    @abstractmethod
    def done(self, deferred: DeferredSend) -> bool:
        """Forget a held send once it has been ordered again (False: it was forgotten already)."""


Tally = Callable[[str, str, Mapping[str, int], TallyKey | None], None]


def release_deferred(
    deferred: DeferredSends, orders: SendOrders, now: datetime, limit: int = 500, tally: Tally | None = None
) -> int:
    """Order again every held send whose quiet hours are over; returns how many. Ordered before it is forgotten:
    a crash in between orders it twice, which the send ledger delivers once. A journey's outcomes then count the
    send no longer as held (`tally`: once, by whoever forgot it), only as what became of it."""
    due = deferred.due(now, limit)
    if due:
        orders.order([d.request for d in due])
    for held in due:
        request = held.request
        forgotten = deferred.done(held)
        if forgotten and tally and request.held_for and request.run_id.endswith(JOURNEY_RUN_SUFFIX):
            persons = len(request.person_ids or [])
            released = {f"deferred_{request.held_for}": -persons}
            tally(request.brand_id or "", request.campaign_id, released, tally_key(request))  # where it was counted
    return len(due)


@dataclass(frozen=True)
class Live:
    state: CampaignState
    version: StoredVersion

    @property
    def definition(self) -> CampaignDefinition:
        return self.version.definition


@dataclass(frozen=True)
class _BrandJourneys:
    """What the journey function knows of a brand's journeys for a minute: the live ones (entering persons), the
    status of each live or paused one, and the event types any of their versions in flight listens to."""

    read_at: float
    live: list[Live]
    status: dict[str, str]
    listening: frozenset[str]


class JourneyResults(BaseModel):
    """Everyone who entered, by group: where they are now, and the conversion rate of each group."""

    campaign_id: str
    entered: dict[str, int]
    by_status: dict[str, dict[str, int]]
    converted: dict[str, int]
    conversion_rate: dict[str, float | None]
    lift: Lift | None = Field(default=None, description="treatment against the holdout (cdp.campaigns.measurement)")
    variants: dict[str, Lift] = Field(
        default_factory=dict, description="each A/B/n arm against the holdout (the arms' own rates side by side)"
    )
    spent_minor: int | None = None
    messages: dict[str, int] = Field(
        default_factory=dict, description="what became of the journey's messages: sent, or suppressed and why"
    )
    message_status: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="channel -> status -> the messages sent showing it now (delivered, opened, clicked, failed, ...)",
    )
    steps: list[JourneyFunnelStep] = Field(
        default_factory=list,
        description="the funnel per step of the latest version, in the definition's order (then any step of an "
        "earlier version it has no more): who reached it, what became of its messages, what their receipts say; "
        "every version's persons and messages at the same place count together",
    )
    variant_steps: dict[str, list[JourneyFunnelStep]] = Field(
        default_factory=dict,
        description="each A/B/n arm's funnel: the steps its persons run, counted for them alone (the arm's "
        "conversion against the holdout: `variants`)",
    )


class ProfileEvent(BaseModel):
    """One update of a `profile.updated` entry, as a journey trigger reads it: the event applied to the person and
    its correlation values."""

    person_id: str
    event_type: str
    event_id: str
    keys: dict[str, list[str]] | None = None


class TagSignal(BaseModel):
    """An `audience.entered` or `lifecycle.changed` entry of the tag engine, as a journey trigger reads it."""

    person_id: str
    brand_id: str = Field(min_length=1)
    at: datetime
    audience_id: str | None = None
    to: str | int | bool | float | None = None

    def trigger(self, detail_type: str) -> tuple[str, str] | None:
        """(kind, value) for `JourneyEngine.on_signal`; None when it enters nobody (a stage removed)."""
        if detail_type == topology.AUDIENCE_ENTERED and self.audience_id:
            return "audience_entered", self.audience_id
        if detail_type == topology.LIFECYCLE_CHANGED and self.to is not None:
            return "lifecycle", str(self.to)
        return None

    def key(self, kind: str, value: str) -> str:
        """The same announcement delivered again has the same key (and enters nobody)."""
        return f"{kind}:{value}:{self.at.isoformat()}"


MAX_ORDERED = 200


def _where(state: JourneyState) -> str:
    """The send step's name in the send ledger's key: `s{step}` on the main path, `{path}-s{step}` on another."""
    return f"s{state.step}" if state.path == MAIN_PATH else f"{state.path}-s{state.step}"


def _matches(key: CorrelationKey | None, state: JourneyState, keys: Mapping[str, Sequence[str]]) -> bool:
    """An awaited event matches when it carries a value the trigger event carried under `key` (no key: any)."""
    if key is None:
        return True
    return bool(set(state.correlation.get(key, ())) & set(keys.get(key, ())))


def entry_plan_run(state: JourneyState) -> str:
    """What a journey entry's offer plan is named by (cdp.offers.service.plan_id_for adds the offer): the journey's
    run, the entry and the person, as the send step names it (cdp.channels.service)."""
    return f"{state.campaign_id}-v{state.version}{JOURNEY_RUN_SUFFIX}:e{state.entries}:{state.person_id}"


def entry_message_plan(definition: CampaignDefinition) -> int:
    """A journey entry's messages' worst case: each send step once, at its dearest channel (a loop's later laps are
    paid from the pool itself as they leave)."""
    prices = definition.budget.cost_per_message_minor
    sends = [s.send for _, s in definition.all_steps() if s.send is not None]
    return sum(max(prices.get(c, 0) for c in (send.channel, *send.or_channels)) for send in sends)


def holdout_group(campaign_id: str, person_id: str, share: float) -> Group:
    """Stable: the same person is in the same group of a campaign every time they enter."""
    digest = hashlib.sha256(f"{campaign_id}:{person_id}".encode()).digest()
    return "holdout" if int.from_bytes(digest[:8], "big") / 2**64 < share else "treatment"


class JourneyEngine:
    def __init__(
        self,
        catalog: CampaignCatalog,
        store: JourneyStore,
        orders: SendOrders,
        profiles: ProfileReader,
        now: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] | None = None,
        org: OrgDirectory | None = None,
        plans: OfferPlans | None = None,
    ) -> None:
        self.org = org
        self.plans = plans  # a treated entry's catalog offers reserved at entry, released when they leave
        self.catalog = catalog
        self.store = store
        self.orders = orders
        self.profiles = profiles
        self.now = now
        self._clock = clock
        self._brands: dict[str, _BrandJourneys] = {}
        self._versions: dict[tuple[str, str, int], StoredVersion] = {}

    # ---- events -------------------------------------------------------------------------------------------------

    def on_event(
        self,
        brand_id: str,
        person_id: str,
        event_type: str,
        event_id: str,
        keys: Mapping[str, Sequence[str]] | None = None,
    ) -> list[str]:
        """Move the person on in the journeys they are in that listen to this event (an awaited event, a conversion,
        a response), then enter them into the journeys it triggers. `keys`: the event's correlation values. Returns
        what happened, for the log."""
        done: list[str] = []
        if event_type in self._brand(brand_id).listening:
            for campaign_id in self.store.memberships(brand_id, person_id):
                done.append(self._heard_again(brand_id, campaign_id, person_id, event_type, keys or {}))
        done.extend(self.on_signal(brand_id, person_id, "event", event_type, event_id, keys))
        return [d for d in done if d]

    def on_signal(
        self,
        brand_id: str,
        person_id: str,
        kind: str,
        value: str,
        key: str,
        keys: Mapping[str, Sequence[str]] | None = None,
    ) -> list[str]:
        """Enter the person into the journeys a signal triggers: an event (`event`, its type), a dynamic audience
        entered (`audience_entered`, its id) or a lifecycle stage reached (`lifecycle`, the stage). `key` names the
        signal: the same one delivered again enters nobody."""
        done = []
        for journey in self.live(brand_id):
            trigger = journey.definition.trigger
            if trigger is not None and trigger.fires_on(kind, value, keys):
                done.append(self._enter(journey, person_id, key, keys))
        return [d for d in done if d]

    def refresh(self) -> None:
        """Forget the journeys read so far (the journey function does at each batch: one read per brand)."""
        self._brands.clear()

    def live(self, brand_id: str) -> list[Live]:
        """The brand's live journeys (read once per batch, and at most once a minute in a long one); none while the
        brand's stop switch is on."""
        return self._brand(brand_id).live

    def _brand(self, brand_id: str) -> _BrandJourneys:
        clock = self._clock() if self._clock else self.now().timestamp()
        cached = self._brands.get(brand_id)
        if cached is not None and clock - cached.read_at < LIVE_CACHE_S:
            return cached
        stopped = self.catalog.switch(brand_id).stopped
        live: list[Live] = []
        status: dict[str, str] = {}
        listening: set[str] = set()
        for state in self.catalog.states(brand_id):
            if state.status not in ("live", "paused") or state.active_version is None:
                continue
            status[state.campaign_id] = state.status
            # persons finish on the version they entered: an older version's awaited events still count
            for number in range(1, state.active_version + 1):
                stored = self._version_or_none(brand_id, state.campaign_id, number)
                if stored is not None and stored.definition.trigger is not None:
                    listening |= stored.definition.listens_to()
            if state.status == "live" and not stopped:
                live.append(Live(state, self._version(brand_id, state.campaign_id, state.active_version)))
        self._brands[brand_id] = _BrandJourneys(clock, live, status, frozenset(listening))
        return self._brands[brand_id]

    def enter(self, journey: Live, person_id: str, key: str, profile: Profile | None = None) -> str:
        """Enter one person whom a sweep or a signal found (`profile`: as read, saving the read of the audience
        check); `key` names the occasion: the same one again enters nobody."""
        return self._enter(journey, person_id, key, None, profile)

    def _enter(
        self,
        journey: Live,
        person_id: str,
        event_id: str,
        keys: Mapping[str, Sequence[str]] | None = None,
        profile: Profile | None = None,
    ) -> str:
        definition, now = journey.definition, self.now()
        cid = definition.campaign_id
        previous = self.store.get(definition.brand_id, cid, person_id)
        if previous is not None:
            if previous.active or previous.entered_by == event_id:
                return ""
            again = definition.reentry_after_days
            if again is None or now < previous.entered_at + timedelta(days=again):
                return ""
        if not self._eligible(definition, person_id, profile):
            return ""
        group = holdout_group(cid, person_id, definition.holdout)
        state = JourneyState(
            brand_id=definition.brand_id,
            campaign_id=cid,
            person_id=person_id,
            version=journey.version.version,
            group=group,
            variant=definition.variant_for(person_id) if group == "treatment" else None,
            status="active",
            step=0,
            entries=previous.entries + 1 if previous else 1,
            entered_at=now,
            entered_by=event_id,
            correlation={k: list(v) for k, v in (keys or {}).items()},
            passed=[],
            rev=previous.rev + 1 if previous else 1,
        )
        if not self._reserve(state, definition):
            state = self._next(state, status="out_of_budget", exited_at=now, next_at=None)
            try:
                self.store.save(state, previous)
            except ConflictError:
                return ""
            return f"{person_id} could not enter {cid}: its offers' pools are short"
        try:
            self._run(state, definition, previous)
        except ConflictError:
            self._release(state, definition)  # a concurrent delivery entered them: its own plan stands
            return ""  # entered by a concurrent delivery of another event
        return f"{person_id} entered {cid} ({state.group})"

    def _reserve(self, state: JourneyState, definition: CampaignDefinition) -> bool:
        """A treated entry's worst case: one of each catalog offer its steps issue, held from the offers' pools
        until they leave (False: a pool cannot cover it)."""
        pool = definition.budget.pool_id
        if self.plans is None or state.group != "treatment" or not (definition.catalog_offers or pool):
            return True
        run = entry_plan_run(state)
        try:
            self.plans.reserve(state.brand_id, run, definition.catalog_offers, 1, self.now())
            if pool is not None:  # and every send step's message once, at its dearest channel
                self.plans.reserve_messages(state.brand_id, run, pool, entry_message_plan(definition), self.now())
        except BudgetExhaustedError as exc:
            logger.info("journey entry's pool short", campaign_id=state.campaign_id, error=str(exc))
            self.plans.release(state.brand_id, run, definition.catalog_offers, self.now())
            return False
        return True

    def _release(self, state: JourneyState, definition: CampaignDefinition | None) -> None:
        """What the entry's plan has left goes back (the coupons it issued keep their holds)."""
        if self.plans is None or state.group != "treatment" or definition is None:
            return
        if definition.catalog_offers or definition.budget.pool_id:
            self.plans.release(state.brand_id, entry_plan_run(state), definition.catalog_offers, self.now())

    def _eligible(self, definition: CampaignDefinition, person_id: str, profile: Profile | None = None) -> bool:
        audience = definition.audience
        policy = self.org.brand(definition.brand_id).contact if self.org is not None else None
        excludes = policy is not None and (policy.global_control_share > 0 or bool(policy.suppress_audiences))
        if excludes and definition.markets:
            profile = profile or self.profiles.get(person_id)
            if profile is None or (self.org is not None and exclusion(self.org.brand(definition.brand_id), profile)):
                return False  # the global control group and suppression lists get no marketing journey at all
        if not (audience.all_of or audience.any_of or audience.none_of or audience.audience_id):
            return True
        profile = profile or self.profiles.get(person_id)
        if profile is None or profile.brand_id != definition.brand_id:
            return False
        if audience.audience_id is not None:  # a dynamic audience: its membership is the person's tag
            membership = profile.tags.get(f"{AUDIENCE_PREFIX}{audience.audience_id}")
            if membership is None or membership.value is not True:
                return False
        return audience.matches(profile)

    def _heard_again(
        self, brand_id: str, campaign_id: str, person_id: str, event_type: str, keys: Mapping[str, Sequence[str]]
    ) -> str:
        """`_heard`, read again when a concurrent move (a tick) stored first: the event still counts on the place the
        other move left (sends it ordered again are delivered once: the same entry and step)."""
        for _ in range(HEARD_ATTEMPTS):
            try:
                return self._heard(brand_id, campaign_id, person_id, event_type, keys)
            except ConflictError:
                continue
        logger.warning("journey event lost to concurrent moves", campaign_id=campaign_id, person_id=person_id)
        return ""

    def _heard(
        self, brand_id: str, campaign_id: str, person_id: str, event_type: str, keys: Mapping[str, Sequence[str]]
    ) -> str:
        """An event of a member: an awaited one moves them on; a conversion ends the journey (or moves them to
        `after_conversion`); a response clears their unanswered sends; a branch's `did` remembers it."""
        state = self.store.get(brand_id, campaign_id, person_id)
        if state is None or not state.active:
            return ""
        definition = self._version(brand_id, campaign_id, state.version).definition
        if event_type not in definition.listens_to():
            return ""
        moved = self._next(state)
        if event_type not in state.seen and len(state.seen) < MAX_SEEN:
            moved = moved.model_copy(update={"seen": [*state.seen, event_type]})
        if definition.max_unanswered is not None and event_type in definition.responses:
            moved = moved.model_copy(update={"unanswered": 0})
        converts = event_type in definition.exit_on and state.converted_at is None
        if converts:
            moved = moved.model_copy(update={"converted_at": self.now()})
        steps = definition.steps_of(state.variant, state.path)
        awaited = steps[state.step].wait_for if state.step < len(steps) and not state.pending else None
        target: dict[str, object] | None = None
        if awaited is not None and awaited.event == event_type and _matches(awaited.match, state, keys):
            target = {"path": awaited.then, "step": 0} if awaited.then else {"step": state.step + 1}
            done = f"{person_id} went on in {campaign_id} after {event_type}"
        elif converts and definition.after_conversion:
            target = {"path": definition.after_conversion, "step": 0}
            done = f"{person_id} converted in {campaign_id} ({state.group}), on to {definition.after_conversion}"
        if target is not None:
            if self._brand(brand_id).status.get(campaign_id) == "live":
                self._run(moved.model_copy(update={**target, "next_at": None, "pending": False}), definition, state)
                return done
            # paused (or stopped): no send may go out now; the step waits for the next tick after a resume
            self.store.save(moved.model_copy(update={**target, "next_at": self.now(), "pending": True}), state)
            return f"{done} (held: {campaign_id} is not live)"
        if converts:
            self._leave(moved, "converted", state, definition)
            return f"{person_id} converted in {campaign_id} ({state.group})"
        if moved.seen != state.seen or moved.unanswered != state.unanswered:
            self.store.save(moved, state)
        return ""

    # ---- time -----------------------------------------------------------------------------------------------------

    def advance_due(self, now: datetime, limit: int = 500) -> int:
        """Move on everyone whose wait is up by `now`; returns how many moved."""
        moved = 0
        for timer in self.store.due(now, limit):
            state = self.store.get(timer.brand_id, timer.campaign_id, timer.person_id)
            if state is None or not state.active or state.next_at != timer.at:
                continue
            campaign = self.catalog.state(state.brand_id, state.campaign_id)
            try:
                if campaign is None or campaign.status == "stopped":
                    stored = self._version_or_none(state.brand_id, state.campaign_id, state.version)
                    self._leave(state, "stopped", definition=stored.definition if stored else None)
                elif campaign.status == "paused":
                    self.store.save(self._next(state, next_at=now + PAUSE_RECHECK), state)
                else:
                    definition = self._version(state.brand_id, state.campaign_id, state.version).definition
                    step = state.step if state.pending else state.step + 1  # a held step has not run yet
                    self._run(self._next(state, step=step, next_at=None, pending=False), definition, state)
                    moved += 1
            except ConflictError:
                continue  # moved by an event meanwhile
        return moved

    # ---- the interpreter ----------------------------------------------------------------------------------------

    def _run(self, state: JourneyState, definition: CampaignDefinition, previous: JourneyState | None) -> None:
        """Run the steps from `state.path`/`state.step` until a wait or the end; store where the person is."""
        orders: list[SendBatchRequest] = []
        profile = cache(partial(self.profiles.get, state.person_id))  # read once, and only by a step that needs it
        for _ in range(MAX_MOVES):
            state, stops = self._step(state, definition, orders, profile)
            if stops:
                break
        else:
            logger.error("journey ran too many steps without a wait", campaign_id=state.campaign_id)
            state = self._next(state, status="completed", exited_at=self.now(), next_at=None)
        if orders:
            self.orders.order(orders)  # before the move is stored: a retried move orders the same sends again
        self.store.save(state, previous)
        if state.status != "active":
            self._release(state, definition)

    def _step(
        self,
        state: JourneyState,
        definition: CampaignDefinition,
        orders: list[SendBatchRequest],
        profile: Callable[[], Profile | None],
    ) -> tuple[JourneyState, bool]:
        """Run one step: the person's place after it, and whether they stop there (a wait, or they left)."""
        steps = definition.steps_of(state.variant, state.path)
        if state.step < len(steps) and _where(state) not in state.reached:  # stored with the move: no write of its own
            state = state.model_copy(update={"passed": [*state.reached, _where(state)]})
        if state.step >= len(steps) or steps[state.step].exit is not None:
            return self._next(state, status="completed", exited_at=self.now(), next_at=None), True
        step = steps[state.step]
        if step.wait is not None:
            zone = self.zone_for(state.brand_id, profile() if step.wait.until is not None else None)
            return self._next(state, next_at=step.wait.ends(self.now(), zone)), True
        if step.wait_for is not None:
            return self._next(state, next_at=step.wait_for.timeout.ends(self.now(), ZoneInfo("UTC"))), True
        if step.send is not None:
            state, left = self._send(state, definition, orders)
            if left:
                return state, True
            answered = state.unanswered + (state.group == "treatment")  # the holdout gets nothing to answer
            return self._next(state, step=state.step + 1, unanswered=answered), False
        target = step.goto
        if step.branch is not None:
            condition = step.branch.if_
            holds = condition.holds(state.seen, profile() if condition.needs_profile else None)
            target = step.branch.then if holds else step.branch.else_
        elif step.split is not None:
            target = step.split.arm_for(f"{state.campaign_id}:{state.path}:{state.step}:{state.person_id}").goto
        return self._next(state, **({"path": target, "step": 0} if target else {"step": state.step + 1})), False

    def _send(
        self, state: JourneyState, definition: CampaignDefinition, orders: list[SendBatchRequest]
    ) -> tuple[JourneyState, bool]:
        """Order the send step for a treated person (the holdout gets nothing); the person's place after it, and
        whether they leave instead (unanswered too often, or the budget is spent)."""
        limit = definition.max_unanswered
        if limit is not None and state.unanswered >= limit:
            return self._next(state, status="unresponsive", exited_at=self.now(), next_at=None), True
        if state.group != "treatment":
            return state, False
        step = definition.steps_of(state.variant, state.path)[state.step].send
        assert step is not None
        cost = definition.budget.cost_of(step)
        if not self.store.spend(state.brand_id, state.campaign_id, cost, definition.budget.amount_minor):
            logger.info("journey out of budget", campaign_id=state.campaign_id, person_id=state.person_id)
            return self._next(state, status="out_of_budget", exited_at=self.now(), next_at=None), True
        orders.append(self._order(state, definition))
        return state.model_copy(update={"ordered": [*state.ordered, _where(state)][-MAX_ORDERED:]}), False

    def zone_for(self, brand_id: str, profile: Profile | None) -> ZoneInfo:
        """The person's time zone (their profile's, else their usual store's, else the brand's)."""
        if self.org is None:
            return zone_of(profile.traits.timezone if profile else None, "UTC")
        return person_zone(self.org.brand(brand_id), profile)

    def _order(self, state: JourneyState, definition: CampaignDefinition) -> SendBatchRequest:
        step = definition.steps_of(state.variant, state.path)[state.step].send
        assert step is not None
        where = _where(state)
        lap = state.ordered.count(where)  # a step sent again on a loop's next lap is a new message
        where = where if lap == 0 else f"{where}-r{lap}"
        return SendBatchRequest(
            campaign_id=definition.campaign_id,
            run_id=f"{definition.campaign_id}-v{state.version}{JOURNEY_RUN_SUFFIX}",
            brand_id=definition.brand_id,
            step=f"e{state.entries}-{where}",  # the send ledger's key: once per entry and step
            channel=step.channel,
            or_channels=step.or_channels,
            purpose=step.purpose,
            template=step.template.model_dump(),
            offer=step.offer.model_dump() if step.offer else None,
            budget=definition.budget if definition.budget.pool_id else None,  # its messages paid from the pool
            priority=definition.priority,
            variant=state.variant,
            person_ids=[state.person_id],
        )

    def _leave(
        self,
        state: JourneyState,
        status: JourneyStatus,
        previous: JourneyState | None = None,
        definition: CampaignDefinition | None = None,
    ) -> None:
        """Take the person out (`previous`: the place read, when `state` already carries changes); their entry's
        offer plan gives back what it has left."""
        self.store.save(self._next(state, status=status, exited_at=self.now(), next_at=None), previous or state)
        self._release(state, definition)

    @staticmethod
    def _next(state: JourneyState, **changes: object) -> JourneyState:
        return state.model_copy(update={**changes, "rev": state.rev + 1})

    def _version(self, brand_id: str, campaign_id: str, version: int) -> StoredVersion:
        stored = self._version_or_none(brand_id, campaign_id, version)
        if stored is None:
            raise ConflictError(f"campaign {campaign_id} has no version {version}")
        return stored

    def _version_or_none(self, brand_id: str, campaign_id: str, version: int) -> StoredVersion | None:
        key = (brand_id, campaign_id, version)
        if key not in self._versions:
            stored = self.catalog.version(brand_id, campaign_id, version)
            if stored is None:
                return None
            self._versions[key] = stored  # versions never change: kept for the function's life
        return self._versions[key]


def summarize(campaign_id: str, places: Iterable[JourneyState]) -> JourneyResults:
    entered: dict[str, int] = {"treatment": 0, "holdout": 0}
    by_status: dict[str, dict[str, int]] = {"treatment": {}, "holdout": {}}
    converted: dict[str, int] = {"treatment": 0, "holdout": 0}
    arms: dict[str, list[int]] = {}  # variant -> [entered, converted]
    for place in places:
        entered[place.group] += 1
        by_status[place.group][place.status] = by_status[place.group].get(place.status, 0) + 1
        converted[place.group] += place.converted
        if place.variant is not None:
            arm = arms.setdefault(place.variant, [0, 0])
            arm[0] += 1
            arm[1] += place.converted
    rates = {g: (converted[g] / entered[g] if entered[g] else None) for g in entered}
    lift = compare(converted["treatment"], entered["treatment"], converted["holdout"], entered["holdout"])
    return JourneyResults(
        campaign_id=campaign_id,
        entered=entered,
        by_status=by_status,
        converted=converted,
        conversion_rate=rates,
        lift=lift if entered["holdout"] else None,
        variants={
            name: compare(n_converted, n_entered, converted["holdout"], entered["holdout"])
            for name, (n_entered, n_converted) in sorted(arms.items())
        },
    )
