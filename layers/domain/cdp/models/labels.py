"""Label definitions: which moment a row's features are taken at, and what counts as a positive after it.

Both modes share one rule: features use events strictly before the row's `as_of`, the label looks at orders in
`[as_of, as_of + window]`, and a row whose window is not complete by the data horizon is left out (censored),
because "no order yet" is not "no order".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from cdp.errors import InvalidInputError
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile


class LabelMode(StrEnum):
    CAMPAIGN_RESPONSE = "campaign_response"
    PURCHASE_PROPENSITY = "purchase_propensity"
    CHURN = "churn"
    UPLIFT = "uplift"
    LOOKALIKE = "lookalike"
    CLV = "clv"
    NEXT_PRODUCT = "next_product"


class LabelDefinition(BaseModel):
    """Recorded in the model manifest so a score can always be read as 'probability of <this>'."""

    model_config = ConfigDict(frozen=True)

    mode: LabelMode
    window_days: int = Field(ge=1, le=730)
    horizon: datetime = Field(description="data horizon: no label window extends past it")
    campaign_id: str | None = None
    campaign_ids: list[str] = Field(default_factory=list, description="pooled response and uplift: the campaigns")
    cutoff: datetime | None = Field(default=None, description="propensity and churn: features as of this instant")
    seed: str | None = Field(default=None, description="look-alike: the seed audience, as its rule reads")

    def describe(self) -> str:
        campaigns = ", ".join(self.campaign_ids or [self.campaign_id or "?"])
        match self.mode:
            case LabelMode.CAMPAIGN_RESPONSE:
                return f"order within {self.window_days} days after delivery of campaign {campaigns}"
            case LabelMode.CHURN:
                return f"no order within {self.window_days} days (customers; features as of {self.cutoff})"
            case LabelMode.UPLIFT:
                return f"extra chance of an order within {self.window_days} days because of campaign {campaigns}"
            case LabelMode.LOOKALIKE:
                return f"resembles the seed audience {self.seed}"
            case LabelMode.CLV:
                return f"purchases, spend and value (holdout check over the last {self.window_days} days)"
            case LabelMode.NEXT_PRODUCT:
                return f"categories bought next (checked over the last {self.window_days} days)"
        return f"order within {self.window_days} days (features as of {self.cutoff})"


@dataclass(frozen=True)
class PersonHistory:
    profile: Profile
    events: Sequence[CanonicalEvent]


@dataclass(frozen=True)
class LabeledExample:
    person_id: str
    as_of: datetime
    label: int
    group: str = ""  # pooled response: the campaign; uplift: "treatment" or "holdout"


@dataclass(frozen=True)
class LabeledSet:
    definition: LabelDefinition
    examples: list[LabeledExample]
    excluded: int  # persons left out: label window not complete by the horizon, or not yet known at the cutoff


def data_horizon(histories: Sequence[PersonHistory]) -> datetime | None:
    """The latest event time in the data (the instant up to which outcomes are known)."""
    return max((e.occurred_at for h in histories for e in h.events), default=None)


def training_horizon(requested: datetime | None, histories: Sequence[PersonHistory]) -> datetime:
    """The horizon a request names, else the data's; InvalidInputError when there is no event to train on."""
    horizon = requested or data_horizon(histories)
    if horizon is None:
        raise InvalidInputError("no events to train on", location="profiles")
    return horizon


def _ordered_within(events: Sequence[CanonicalEvent], start: datetime, end: datetime) -> bool:
    return any(e.event_type == "order_placed" and start <= e.occurred_at <= end for e in events)


def campaign_response_labels(
    histories: Sequence[PersonHistory], campaign_ids: str | Sequence[str], window_days: int, horizon: datetime
) -> LabeledSet:
    """One row per person and campaign delivered to them (pooled over `campaign_ids`, e.g. the Valentine's and the
    Christmas cake campaigns): features as of that campaign's first delivery, or of the person's assignment to it
    (`campaign_assigned`) when that came earlier, so the campaign's own record never reaches the features (scoring
    sees persons before any campaign picks them); `group` names the campaign."""
    ids = [campaign_ids] if isinstance(campaign_ids, str) else list(campaign_ids)
    window = timedelta(days=window_days)
    examples: list[LabeledExample] = []
    excluded = 0
    for history in histories:
        first: dict[str, datetime] = {}
        assigned: dict[str, datetime] = {}
        for e in history.events:
            if e.event_type == "campaign_assigned" and e.properties.campaign_id in ids:
                cid = e.properties.campaign_id
                assigned[cid] = min(assigned.get(cid, e.occurred_at), e.occurred_at)
            elif (
                e.event_type == "message_delivered"
                and e.properties.campaign_id in ids
                and e.properties.status == "delivered"
            ):
                cid = e.properties.campaign_id
                first[cid] = min(first.get(cid, e.occurred_at), e.occurred_at)
        for cid, delivered_at in sorted(first.items()):
            if delivered_at + window > horizon:
                excluded += 1
                continue
            label = _ordered_within(history.events, delivered_at, delivered_at + window)
            as_of = min(delivered_at, assigned.get(cid, delivered_at))
            examples.append(LabeledExample(history.profile.person_id, as_of, int(label), group=cid))
    definition = LabelDefinition(
        mode=LabelMode.CAMPAIGN_RESPONSE,
        window_days=window_days,
        horizon=horizon,
        campaign_id=ids[0] if len(ids) == 1 else None,
        campaign_ids=ids,
    )
    return LabeledSet(definition, examples, excluded)


def purchase_propensity_labels(
    histories: Sequence[PersonHistory], window_days: int, horizon: datetime, windows_back: int = 1
) -> LabeledSet:
    """One row per person seen before the cutoff (= horizon - windows_back * window): did they order in the window
    after it? `windows_back` 2 gives the earlier rows of a time split."""
    cutoff = horizon - timedelta(days=window_days * windows_back)
    end = cutoff + timedelta(days=window_days)
    examples: list[LabeledExample] = []
    excluded = 0
    for history in histories:
        if not any(e.occurred_at < cutoff for e in history.events):
            excluded += 1  # unknown at the cutoff: a model scoring "now" would not have seen them either
            continue
        label = _ordered_within(history.events, cutoff, end)
        examples.append(LabeledExample(history.profile.person_id, cutoff, int(label)))
    definition = LabelDefinition(
        mode=LabelMode.PURCHASE_PROPENSITY, window_days=window_days, horizon=end, cutoff=cutoff
    )
    return LabeledSet(definition, examples, excluded)


def churn_labels(
    histories: Sequence[PersonHistory], window_days: int, horizon: datetime, windows_back: int = 1
) -> LabeledSet:
    """One row per customer (an order before the cutoff): 1 when they place no order in the window after it."""
    cutoff = horizon - timedelta(days=window_days * windows_back)
    end = cutoff + timedelta(days=window_days)
    examples: list[LabeledExample] = []
    excluded = 0
    for history in histories:
        if not any(e.event_type == "order_placed" and e.occurred_at < cutoff for e in history.events):
            excluded += 1  # not a customer yet: churn means stopping, and they never started
            continue
        label = not _ordered_within(history.events, cutoff, end)
        examples.append(LabeledExample(history.profile.person_id, cutoff, int(label)))
    definition = LabelDefinition(mode=LabelMode.CHURN, window_days=window_days, horizon=end, cutoff=cutoff)
    return LabeledSet(definition, examples, excluded)


def uplift_labels(
    histories: Sequence[PersonHistory], campaign_ids: Sequence[str], window_days: int, horizon: datetime
) -> LabeledSet:
    """One row per person and randomized campaign they were assigned in: features as of the assignment, `group`
    treatment or holdout, label: an order within the window after it. The group is the person's `campaign_assigned`
    record; without one, a send of the campaign (`message_delivered`, whatever its status) marks the treatment, as a
    previous tool's send log and its list of held-out persons do. Intent to treat: a treated person whose message
    failed stays treated, as the randomization made them."""
    window = timedelta(days=window_days)
    examples: list[LabeledExample] = []
    excluded = 0
    for history in histories:
        assigned: dict[str, tuple[datetime, str]] = {}
        sent: dict[str, datetime] = {}
        for e in history.events:
            if e.event_type == "campaign_assigned" and e.properties.campaign_id in campaign_ids:
                cid = e.properties.campaign_id
                if cid not in assigned or e.occurred_at < assigned[cid][0]:
                    assigned[cid] = (e.occurred_at, e.properties.group)
            elif e.event_type == "message_delivered" and e.properties.campaign_id in campaign_ids:
                send_of = str(e.properties.campaign_id)
                sent[send_of] = min(sent.get(send_of, e.occurred_at), e.occurred_at)
        for cid, at in sent.items():
            assigned.setdefault(cid, (at, "treatment"))
        for _, (at, group) in sorted(assigned.items()):
            if at + window > horizon:
                excluded += 1
                continue
            label = _ordered_within(history.events, at, at + window)
            examples.append(LabeledExample(history.profile.person_id, at, int(label), group=group))
    definition = LabelDefinition(
        mode=LabelMode.UPLIFT, window_days=window_days, horizon=horizon, campaign_ids=list(campaign_ids)
    )
    return LabeledSet(definition, examples, excluded)
