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

from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile


class LabelMode(StrEnum):
    CAMPAIGN_RESPONSE = "campaign_response"
    PURCHASE_PROPENSITY = "purchase_propensity"


class LabelDefinition(BaseModel):
    """Recorded in the model manifest so a score can always be read as 'probability of <this>'."""

    model_config = ConfigDict(frozen=True)

    mode: LabelMode
    window_days: int = Field(ge=1, le=730)
    horizon: datetime = Field(description="data horizon: no label window extends past it")
    campaign_id: str | None = None
    cutoff: datetime | None = Field(default=None, description="purchase propensity: features as of this instant")

    def describe(self) -> str:
        if self.mode is LabelMode.CAMPAIGN_RESPONSE:
            return f"order within {self.window_days} days after delivery of campaign {self.campaign_id}"
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


@dataclass(frozen=True)
class LabeledSet:
    definition: LabelDefinition
    examples: list[LabeledExample]
    excluded: int  # persons left out: label window not complete by the horizon, or not yet known at the cutoff


def data_horizon(histories: Sequence[PersonHistory]) -> datetime | None:
    """The latest event time in the data (the instant up to which outcomes are known)."""
    return max((e.occurred_at for h in histories for e in h.events), default=None)


def _ordered_within(events: Sequence[CanonicalEvent], start: datetime, end: datetime) -> bool:
    return any(e.event_type == "order_placed" and start <= e.occurred_at <= end for e in events)


def campaign_response_labels(
    histories: Sequence[PersonHistory], campaign_id: str, window_days: int, horizon: datetime
) -> LabeledSet:
    """One row per person who got campaign `campaign_id` delivered: features as of the first delivery."""
    window = timedelta(days=window_days)
    examples: list[LabeledExample] = []
    excluded = 0
    for history in histories:
        deliveries = [
            e.occurred_at
            for e in history.events
            if e.event_type == "message_delivered"
            and e.properties.campaign_id == campaign_id
            and e.properties.status == "delivered"
        ]
        if not deliveries:
            continue
        delivered_at = min(deliveries)
        if delivered_at + window > horizon:
            excluded += 1
            continue
        label = _ordered_within(history.events, delivered_at, delivered_at + window)
        examples.append(LabeledExample(history.profile.person_id, delivered_at, int(label)))
    definition = LabelDefinition(
        mode=LabelMode.CAMPAIGN_RESPONSE, window_days=window_days, horizon=horizon, campaign_id=campaign_id
    )
    return LabeledSet(definition, examples, excluded)


def purchase_propensity_labels(histories: Sequence[PersonHistory], window_days: int, horizon: datetime) -> LabeledSet:
    """One row per person seen before the cutoff (= horizon - window): did they order in the window after it?"""
    cutoff = horizon - timedelta(days=window_days)
    examples: list[LabeledExample] = []
    excluded = 0
    for history in histories:
        if not any(e.occurred_at < cutoff for e in history.events):
            excluded += 1  # unknown at the cutoff: a model scoring "now" would not have seen them either
            continue
        label = _ordered_within(history.events, cutoff, horizon)
        examples.append(LabeledExample(history.profile.person_id, cutoff, int(label)))
    definition = LabelDefinition(
        mode=LabelMode.PURCHASE_PROPENSITY, window_days=window_days, horizon=horizon, cutoff=cutoff
    )
    return LabeledSet(definition, examples, excluded)
