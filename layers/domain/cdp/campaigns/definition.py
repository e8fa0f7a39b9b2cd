"""A campaign as data: who, when, what, within which limits, measured how (`CampaignDefinition`).

Written as YAML or JSON and stored in versions (`cdp.campaigns.lifecycle`). A run executes one version on the
campaign state machine, so a run keeps the version it started with. Each step is a one-key mapping, so an error's
field path reads like the file (`steps[2].send.template.body`):

    steps:
      - send: {channel: sms, template: {body: "..."}}
      - wait: {days: 3}
      - send: {channel: sms, template: {body: "..."}, to: not_converted}

The state machine runs a first send, and optionally a wait and a second send to the treatment group's persons who
have not converted by then (`problems` refuses any other sequence, with its field path).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp.audiences.models import ValidationIssue
from cdp.campaigns.models import (
    Audience,
    Budget,
    CampaignRequest,
    Fraction,
    RunVariant,
    TagCondition,
    Touch,
    variant_of,
)
from cdp.campaigns.targeting import Targeting
from cdp.campaigns.triggers import CorrelationKey, EventType, Trigger
from cdp.channels.models import DEFAULT_PRIORITY
from cdp.channels.templates import template_problem
from cdp.org import BrandConfig, check_zone
from cdp.profile.models import Profile

CAMPAIGN_ID_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
CampaignId = Annotated[str, Field(pattern=CAMPAIGN_ID_PATTERN, description="lower_snake_case, up to 48 characters")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 12, 31)
MAX_OCCURRENCE_SCAN_DAYS = 800
MAX_JOURNEY_STEPS = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- when -------------------------------------------------------------------------------------------------------


def _plausible(day: date) -> date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return day


class Every(_Frozen):
    """Recurring: on these weekdays (every day when omitted) at a local time."""

    weekdays: list[Weekday] | None = Field(default=None, min_length=1, max_length=7)
    at: time = Field(description="local time, HH:MM")

    @field_validator("at")
    @classmethod
    def _minutes(cls, value: time) -> time:
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError("give the local time as HH:MM (the schedule's timezone applies)")
        return value


class Schedule(_Frozen):
    """When runs start: `once` at a local date and time, or `every` weekday(s) at a time, in `timezone` (the
    brand's when omitted), between `starts_on` and `ends_on` (local dates, both included)."""

    timezone: str | None = Field(default=None, description="IANA name, e.g. Asia/Shanghai; default: the brand's")
    once: datetime | None = Field(default=None, description="local date and time, e.g. 2027-03-01T10:00")
    every: Every | None = None
    starts_on: date | None = None
    ends_on: date | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    @field_validator("once")
    @classmethod
    def _local(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("give the local date and time without an offset (the schedule's timezone applies)")
        if value is not None:
            _plausible(value.date())
        return value

    @field_validator("starts_on", "ends_on")
    @classmethod
    def _day(cls, value: date | None) -> date | None:
        return None if value is None else _plausible(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.once is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of 'once' or 'every'")
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self

    def zone(self, brand: BrandConfig) -> ZoneInfo:
        return ZoneInfo(self.timezone or brand.timezone)

    def next_after(self, after: datetime, brand: BrandConfig) -> datetime | None:
        """The first occurrence strictly after `after` (UTC), or None when there is none left."""
        zone = self.zone(brand)
        if self.once is not None:
            at = self.once.replace(tzinfo=zone).astimezone(UTC)
            return at if at > after and self._within(self.once.date()) else None
        assert self.every is not None
        day = max(after.astimezone(zone).date(), self.starts_on or date.min)
        days = {WEEKDAYS.index(d) for d in self.every.weekdays or WEEKDAYS}
        for _ in range(MAX_OCCURRENCE_SCAN_DAYS):
            if self.ends_on is not None and day > self.ends_on:
                return None
            if day.weekday() in days:
                at = datetime.combine(day, self.every.at, tzinfo=zone).astimezone(UTC)
                if at > after:
                    return at
            day += timedelta(days=1)
        return None

    def _within(self, day: date) -> bool:
        return (self.starts_on is None or day >= self.starts_on) and (self.ends_on is None or day <= self.ends_on)


# ---- what ---------------------------------------------------------------------------------------------------------


class SendStep(Touch):
    """A message on one channel; `to: not_converted` (a later send only) reaches the treatment persons who have not
    converted since the first send."""

    to: Literal["everyone", "not_converted"] = "everyone"


class Wait(_Frozen):
    """A duration, or (a journey) `until` the next time it is this local time for the person (their time zone, else
    the brand's): `{days: 3}`, `{until: "10:00"}`."""

    days: int = Field(default=0, ge=0, le=365)
    hours: int = Field(default=0, ge=0, le=24 * 365)
    minutes: int = Field(default=0, ge=0, le=60 * 24 * 365)
    until: time | None = Field(default=None, description="local time HH:MM: wait for its next occurrence")

    @model_validator(mode="after")
    def _positive(self) -> Wait:
        if self.until is not None:
            if self.seconds:
                raise ValueError("a wait is a duration or `until` a local time, not both")
            if self.until.second or self.until.microsecond or self.until.tzinfo is not None:
                raise ValueError("give `until` as a local time HH:MM")
            return self
        if self.seconds < 60 or self.seconds > 365 * 86_400:
            raise ValueError("a wait lasts between one minute and 365 days")
        return self

    @property
    def seconds(self) -> int:
        return self.days * 86_400 + self.hours * 3_600 + self.minutes * 60

    def ends(self, now: datetime, zone: ZoneInfo) -> datetime:
        """When a wait that starts at `now` (UTC) is up."""
        if self.until is None:
            return now + timedelta(seconds=self.seconds)
        local = now.astimezone(zone)
        at = datetime.combine(local.date(), self.until, tzinfo=zone)
        if at <= local:
            at = datetime.combine(local.date() + timedelta(days=1), self.until, tzinfo=zone)
        return at.astimezone(UTC)


PathName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="a path of `paths`")]
MAIN_PATH = "main"


class WaitFor(_Frozen):
    """Wait until the person has an event of this type (with `match`: carrying the value the trigger event carried
    under that key, e.g. the cart's sku in the order), at most `timeout`. When it comes the person goes to `then`
    (default: the next step); when the time is up, to the next step."""

    event: EventType
    match: CorrelationKey | None = Field(default=None, description="e.g. sku: the same sku as the trigger event")
    timeout: Wait
    then: PathName | None = None

    @model_validator(mode="after")
    def _duration(self) -> WaitFor:
        if self.timeout.until is not None:
            raise ValueError("a wait_for's timeout is a duration")
        return self


class Condition(_Frozen):
    """`did`: the person had an event of this type since entering (bought, clicked, opened); tag conditions on the
    person's profile now (`all_of`, `any_of`, `none_of`, as in an audience). All that are given must hold."""

    did: EventType | None = None
    all_of: list[TagCondition] = Field(default_factory=list, max_length=20)
    any_of: list[TagCondition] = Field(default_factory=list, max_length=20)
    none_of: list[TagCondition] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _something(self) -> Condition:
        if self.did is None and not (self.all_of or self.any_of or self.none_of):
            raise ValueError("a condition needs `did` or a tag condition")
        return self

    @property
    def needs_profile(self) -> bool:
        return bool(self.all_of or self.any_of or self.none_of)

    def holds(self, seen: Iterable[str], profile: Profile | None) -> bool:
        if self.did is not None and self.did not in seen:
            return False
        if not self.needs_profile:
            return True
        if profile is None:
            return False
        return Audience(all_of=self.all_of, any_of=self.any_of, none_of=self.none_of).matches(profile)


class Branch(_Frozen):
    """`if` the condition holds go to the path `then`, else to `else` (default: the next step)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    if_: Condition = Field(alias="if")
    then: PathName
    else_: PathName | None = Field(default=None, alias="else")


class SplitArm(_Frozen):
    share: float = Field(gt=0.0, le=1.0)
    goto: PathName | None = Field(default=None, description="default: the next step")


class Split(_Frozen):
    """A random split, stable per person: each arm's share of those who reach it goes to its path."""

    arms: list[SplitArm] = Field(min_length=2, max_length=10)

    @model_validator(mode="after")
    def _shares(self) -> Split:
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the arms' shares add up to {total:g}, not 1")
        return self

    def arm_for(self, seed: str) -> SplitArm:
        point, edge = _unit(seed), 0.0
        for arm in self.arms:
            edge += arm.share
            if point < edge:
                return arm
        return self.arms[-1]


class Exit(_Frozen):
    """Leave the journey here (as completed)."""


def _unit(seed: str) -> float:
    """A stable point in [0, 1) for a seed (splits and variants)."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") / 2**64


STEP_KINDS = ("send", "wait", "wait_for", "branch", "split", "goto", "exit")


class Step(_Frozen):
    """Exactly one of: `send`, `wait`, `wait_for` (an event, with a timeout), `branch` (if/then/else), `split` (random,
    stable per person), `goto` (a path) or `exit`."""

    send: SendStep | None = None
    wait: Wait | None = None
    wait_for: WaitFor | None = None
    branch: Branch | None = None
    split: Split | None = None
    goto: PathName | None = None
    exit: Exit | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        if sum(getattr(self, kind) is not None for kind in STEP_KINDS) != 1:
            raise ValueError(f"a step is exactly one of {', '.join(STEP_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    def targets(self) -> list[str]:
        """The paths this step can go to."""
        if self.goto is not None:
            return [self.goto]
        if self.branch is not None:
            return [p for p in (self.branch.then, self.branch.else_) if p]
        if self.split is not None:
            return [a.goto for a in self.split.arms if a.goto]
        if self.wait_for is not None and self.wait_for.then:
            return [self.wait_for.then]
        return []


# ---- the definition -------------------------------------------------------------------------------------------


class Variant(_Frozen):
    """An A/B/n arm of a journey: a share of the treated persons (stable per person) and its own steps (default: the
    campaign's)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    share: float = Field(gt=0.0, le=1.0)
    steps: list[Step] | None = Field(default=None, min_length=1, max_length=MAX_JOURNEY_STEPS)


class CampaignDefinition(_Frozen):
    campaign_id: CampaignId
    brand_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/#+\-]+$")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    audience: Audience = Field(default_factory=Audience, description="who: tag conditions and/or a stored audience")
    schedule: Schedule | None = Field(default=None, description="when; without one, runs start when started")
    trigger: Trigger | None = Field(default=None, description="an always-on journey: entered one person at a time")
    exit_on: list[EventType] = Field(
        default_factory=list, max_length=10, description="a journey's conversion events: the person leaves at once"
    )
    reentry_after_days: int | None = Field(
        default=30, ge=0, le=3650, description="a journey: days after an entry before the next (None: never again)"
    )
    steps: list[Step] = Field(min_length=1, max_length=MAX_JOURNEY_STEPS)
    paths: dict[PathName, list[Step]] = Field(
        default_factory=dict, max_length=10, description="a journey's named paths (branch, split, goto go to them)"
    )
    after_conversion: PathName | None = Field(
        default=None, description="a journey: an exit_on event moves the person to this path instead of ending"
    )
    max_unanswered: int | None = Field(
        default=None, ge=1, le=20, description="a journey: leave after this many sends with no response in between"
    )
    responses: list[EventType] = Field(
        default_factory=lambda: ["message_clicked", "message_opened", "order_placed"],
        max_length=10,
        description="what counts as a response for max_unanswered",
    )
    variants: list[Variant] = Field(
        default_factory=list, max_length=10, description="a journey's A/B/n arms (shares of the treated, adding to 1)"
    )
    budget: Budget
    max_recipients: int | None = Field(default=None, ge=0, description="hard cap on the audience (both groups)")
    holdout: Fraction = Field(default=0.1, description="share of the selected persons kept as a control group")
    conversion_window_days: int = Field(default=14, ge=1, le=365)
    score_model: str = Field(default="response", min_length=1, max_length=64, description="ranks who gets it first")
    targeting: Targeting | None = Field(
        default=None, description="rank by expected incremental profit from an uplift model (scheduled campaigns)"
    )
    priority: int = Field(
        default=DEFAULT_PRIORITY,
        ge=1,
        le=100,
        description="higher wins: a send leaves cap room for higher-priority runs due later the same day",
    )

    def steps_of(self, variant: str | None, path: str = MAIN_PATH) -> list[Step]:
        """The steps of a path; the main path of a person of `variant` is the variant's (the campaign's own when it
        has none)."""
        if path != MAIN_PATH:
            return self.paths.get(path, [])
        arm = next((v for v in self.variants if v.name == variant), None)
        return arm.steps if arm is not None and arm.steps is not None else self.steps

    def all_steps(self) -> list[tuple[str, Step]]:
        """Every step with its field path (main, variants' and paths' steps)."""
        out = [(f"steps[{i}]", step) for i, step in enumerate(self.steps)]
        for i, arm in enumerate(self.variants):
            out.extend((f"variants[{i}].steps[{j}]", step) for j, step in enumerate(arm.steps or []))
        for name, steps in self.paths.items():
            out.extend((f"paths.{name}[{j}]", step) for j, step in enumerate(steps))
        return out

    @property
    def catalog_offers(self) -> list[str]:
        """The catalog offers any send step issues (a journey entry's worst case holds one of each)."""
        offers = (s.send.offer.offer_id for _, s in self.all_steps() if s.send is not None and s.send.offer is not None)
        return list(dict.fromkeys(o for o in offers if o))

    @property
    def markets(self) -> bool:
        """Whether any send is marketing (the contact policy's control group and suppression lists keep persons out)."""
        return any(step.send.purpose == "marketing" for _, step in self.all_steps() if step.send is not None)

    def listens_to(self) -> set[str]:
        """Event types that change a member's place: exits, awaited events, branch conditions, responses."""
        out = set(self.exit_on)
        for _, step in self.all_steps():
            if step.wait_for is not None:
                out.add(step.wait_for.event)
            if step.branch is not None and step.branch.if_.did is not None:
                out.add(step.branch.if_.did)
        if self.max_unanswered is not None:
            out.update(self.responses)
        return out

    def variant_for(self, person_id: str) -> str | None:
        """The person's arm: stable for the campaign, in proportion to the shares (None without variants)."""
        return variant_of(self.campaign_id, person_id, [(v.name, v.share) for v in self.variants])

    @property
    def first_send_step(self) -> SendStep | None:
        """The first send of the steps (a journey's may be on a path); None when there is none."""
        return next((s.send for _, s in self.all_steps() if s.send is not None), None)

    @property
    def first_send(self) -> Touch:
        step = self.first_send_step
        assert step is not None  # problems() refuses a definition without a send
        return _touch(step)

    @property
    def follow_up(self) -> tuple[Touch, int] | None:
        if len(self.steps) < 3:
            return None
        wait, send = self.steps[1].wait, self.steps[2].send
        assert wait is not None and send is not None
        return _touch(send), wait.seconds

    def planned_sends(self) -> int:
        """The most first sends a run can make (a journey: in all): what the budget pays for at the first send's
        channel cost, within `max_recipients` (the selection cuts to both; the holdout is on top of the treatment)."""
        cost = self.budget.cost_of(self.first_send)
        affordable = self.budget.amount_minor // cost if cost else 0
        if self.max_recipients is None:
            return affordable
        return min(affordable, round(self.max_recipients * (1 - self.holdout)))

    def to_request(self, run_id: str) -> CampaignRequest:
        """The state machine's input for one run of this definition."""
        follow_up = self.follow_up
        return CampaignRequest(
            campaign_id=self.campaign_id,
            run_id=run_id,
            brand_id=self.brand_id,
            audience=self.audience,
            score_model=self.score_model,
            targeting=self.targeting,
            touch1=self.first_send,
            touch2=follow_up[0] if follow_up else None,
            second_touch=follow_up is not None,
            wait_seconds=follow_up[1] if follow_up else 0,
            budget=self.budget,
            max_recipients=self.max_recipients,
            holdout_fraction=self.holdout,
            conversion_window_seconds=self.conversion_window_days * 86_400,
            priority=self.priority,
            variants=[
                RunVariant(name=v.name, share=v.share, touch1=_touch(v.steps[0].send))
                for v in self.variants
                if v.steps and v.steps[0].send is not None
            ],
        )


def _touch(send: SendStep) -> Touch:
    return Touch.model_validate(send.model_dump(exclude={"to"}))


def problems(definition: CampaignDefinition) -> list[ValidationIssue]:
    """What makes a well-formed definition unrunnable, each with its field path."""
    out = _journey_problems(definition) if definition.trigger else _run_problems(definition)
    for where, step in definition.all_steps():
        out.extend(_send_problems(step, where, definition))
    costs = definition.budget.cost_per_message_minor
    first = definition.first_send_step  # the one the budget cut divides by (`planned_sends`)
    if first is not None and costs.get(first.channel) == 0:
        out.append(
            ValidationIssue(
                field=f"budget.cost_per_message_minor.{first.channel}",
                message="the first send's channel needs a cost above 0 (the budget decides how many get it)",
            )
        )
    return out


def _variant_problems(definition: CampaignDefinition) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    if definition.variants:
        total = sum(v.share for v in definition.variants)
        if abs(total - 1.0) > 1e-9:
            out.append(ValidationIssue(field="variants", message=f"the shares add up to {total:g}, not 1"))
        names = [v.name for v in definition.variants]
        if len(set(names)) != len(names):
            out.append(ValidationIssue(field="variants", message="two variants have the same name"))
    return out


def _journey_problems(definition: CampaignDefinition) -> list[ValidationIssue]:
    out: list[ValidationIssue] = _variant_problems(definition)
    if definition.schedule is not None:
        out.append(ValidationIssue(field="schedule", message="a triggered journey has no schedule: remove one of them"))
    if definition.max_recipients is not None:
        out.append(ValidationIssue(field="max_recipients", message="a journey is capped by its budget, not a size"))
    if definition.targeting is not None and definition.targeting.ranking != "response":
        out.append(
            ValidationIssue(
                field="targeting",
                message="uplift targeting ranks a scheduled run's audience under its budget; a journey enters persons "
                "one by one (gate it with a condition on the uplift score instead, e.g. {score: sms_uplift, gt: 0})",
            )
        )
    if not any(s.send for _, s in definition.all_steps()):
        out.append(ValidationIssue(field="steps", message="a journey needs at least one send"))
    out.extend(_path_problems(definition))
    out.extend(_journey_step_problems(definition))
    return out


def _path_problems(definition: CampaignDefinition) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    if MAIN_PATH in definition.paths:
        out.append(ValidationIssue(field=f"paths.{MAIN_PATH}", message="`main` is the name of `steps`"))
    for name, steps in definition.paths.items():
        if not steps:
            out.append(ValidationIssue(field=f"paths.{name}", message="a path needs at least one step"))
        if len(steps) > MAX_JOURNEY_STEPS:
            out.append(ValidationIssue(field=f"paths.{name}", message=f"a path has at most {MAX_JOURNEY_STEPS} steps"))
    targets = [(where, t) for where, step in definition.all_steps() for t in step.targets()]
    if definition.after_conversion:
        targets.append(("after_conversion", definition.after_conversion))
    for where, target in targets:
        if target not in definition.paths:
            out.append(ValidationIssue(field=where, message=f"no path {target!r} in paths"))
    reached = {t for _, t in targets}
    for name in definition.paths:
        if name not in reached:
            out.append(ValidationIssue(field=f"paths.{name}", message="no step goes to this path"))
    loop = _loop_without_wait(definition)
    if loop:
        out.append(
            ValidationIssue(field=f"paths.{loop[0]}", message=f"{' -> '.join(loop)} loops without a wait in between")
        )
    return out


def _journey_step_problems(definition: CampaignDefinition) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    trigger = definition.trigger
    for where, step in definition.all_steps():
        if step.send is not None and step.send.to != "everyone":
            out.append(
                ValidationIssue(field=f"{where}.send.to", message="in a journey, those who convert leave by exit_on")
            )
    if trigger is not None and trigger.event and trigger.event in definition.exit_on:
        out.append(ValidationIssue(field="exit_on", message="the trigger event would end the journey it starts"))
    for where, step in definition.all_steps():
        if step.wait_for is not None and step.wait_for.match is not None and (trigger is None or not trigger.event):
            out.append(
                ValidationIssue(
                    field=f"{where}.wait_for.match", message="only an event trigger carries values to match"
                )
            )
    return out


def _loop_without_wait(definition: CampaignDefinition) -> list[str] | None:
    """A cycle of paths that a person could run round without waiting (each path is entered at its first step).
    Linear in the paths and their edges: each path is visited once (a colouring depth-first search)."""
    edges: dict[str, set[str]] = {}
    heads = {MAIN_PATH: [definition.steps, *(v.steps for v in definition.variants if v.steps)]}
    heads.update({name: [steps] for name, steps in definition.paths.items()})
    for name, lists in heads.items():
        for steps in lists:
            for step in steps:
                if step.wait is not None or step.wait_for is not None:
                    break
                edges.setdefault(name, set()).update(step.targets())
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            found = visit(nxt, [*trail, node])
            if found:
                return found
        done.add(node)
        return None

    for start in heads:
        found = visit(start, [])
        if found:
            return found
    return None


def _send_problems(step: Step, where: str, definition: CampaignDefinition) -> list[ValidationIssue]:
    """A send's templates, and that the budget prices its channel."""
    if step.send is None:
        return []
    out: list[ValidationIssue] = []
    template = step.send.template
    parts: list[tuple[str, str | None]] = [("body", template.body), ("subject", template.subject)]
    parts += [("link", template.link)]
    parts += [(f"sms.params.{name}", source) for name, source in (template.sms.params if template.sms else {}).items()]
    parts += [
        (f"wechat.fields.{name}", text) for name, text in (template.wechat.fields if template.wechat else {}).items()
    ]
    for part, source in parts:
        problem = template_problem(source, step.send.offer is not None) if source is not None else None
        if problem:
            out.append(ValidationIssue(field=f"{where}.send.template.{part}", message=problem))
    for name in step.send.channels:
        if name not in definition.budget.cost_per_message_minor:
            out.append(
                ValidationIssue(
                    field=f"budget.cost_per_message_minor.{name}",
                    message=f"no cost for the {name} messages of {where}",
                )
            )
    return out


def _run_problems(definition: CampaignDefinition) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    out.extend(_variant_problems(definition))
    for i, arm in enumerate(definition.variants):
        if arm.steps is None or len(arm.steps) != 1 or arm.steps[0].send is None:
            out.append(
                ValidationIssue(
                    field=f"variants[{i}].steps",
                    message="in a scheduled campaign a variant is one send: the first send it gets instead",
                )
            )
    if definition.exit_on:
        out.append(ValidationIssue(field="exit_on", message="only a triggered journey has exit events"))
    for name in ("paths", "after_conversion", "max_unanswered"):
        if getattr(definition, name):
            out.append(ValidationIssue(field=name, message="only a triggered journey has it (for now)"))
    shape = [s.kind for s in definition.steps]
    if shape not in (["send"], ["send", "wait", "send"]):
        out.append(
            ValidationIssue(
                field="steps",
                message=f"the steps are {' -> '.join(shape)}; a campaign runs a send, or a send, a wait and a "
                "follow-up send (to: not_converted)",
            )
        )
        return out
    wait = definition.steps[1].wait if len(shape) == 3 else None
    if wait is not None and wait.until is not None:
        out.append(ValidationIssue(field="steps[1].wait.until", message="a scheduled run waits a duration"))
    if definition.steps[0].send and definition.steps[0].send.to != "everyone":
        out.append(ValidationIssue(field="steps[0].send.to", message="the first send goes to everyone selected"))
    if len(shape) == 3 and definition.steps[2].send and definition.steps[2].send.to != "not_converted":
        out.append(
            ValidationIssue(
                field="steps[2].send.to", message="a follow-up reaches those who have not converted: not_converted"
            )
        )
    return out


def run_id_for(campaign_id: str, version: int, at: datetime, *, scheduled: bool) -> str:
    """A run's id (and its execution's name): the campaign, the version and when it started. A scheduled
    occurrence is named by its minute, so firing it twice starts one run; a run started by hand, by its second."""
    stamp = f"{at.astimezone(UTC):%Y%m%dT%H%MZ}" if scheduled else f"{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{campaign_id}-v{version}-{stamp}"
