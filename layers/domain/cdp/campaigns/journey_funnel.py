"""A journey's funnel per step and per A/B/n arm, as a marketer reads it: who reached each step (the persons' places),
what became of its messages (the send function's tallies, `JourneyStore.step_outcomes`) and what their receipts say
(the message log's counts per step, `MessageLog.step_counts`), laid on the latest version's steps in the definition's
order.

A step is known everywhere by its place on its path (`s1` on the main path, `reminder-s0` on a path): the place of a
main-path step is the campaign's step, or the person's arm's own step when the arm has steps of its own. Every
version's persons and messages at one place count together (a version that moves steps counts at the new places).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cdp.campaigns.definition import CampaignDefinition, Step
from cdp.campaigns.journeys import OUTCOMES, JourneyState, TallyKey
from cdp.campaigns.models import JourneyFunnelStep
from cdp.channels.lifecycle import RANK
from cdp.channels.ports import StepOf

_PLACE = re.compile(r"^(?:(?P<path>[a-z][a-z0-9_]*)-)?s(?P<index>\d+)$")
KEPT_BACK = tuple(name for name in OUTCOMES if name.startswith(("suppressed_", "held_")))
DEFERRED = tuple(name for name in OUTCOMES if name.startswith("deferred_"))


def step_path(definition: CampaignDefinition, variant: str | None, place: str) -> str | None:
    """The field path of a place for a person of `variant` (`steps[1]`, `variants[0].steps[1]`, `paths.x[0]`); None
    for a place of no known form."""
    found = _PLACE.match(place)
    if found is None:
        return None
    index, path = int(found["index"]), found["path"]
    if path is not None:
        return f"paths.{path}[{index}]"
    for k, arm in enumerate(definition.variants):
        if arm.name == variant and arm.steps is not None:
            return f"variants[{k}].steps[{index}]"
    return f"steps[{index}]"


@dataclass
class _Counts:
    reached: int = 0
    reached_holdout: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    receipts: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Counts) -> None:
        self.reached += other.reached
        self.reached_holdout += other.reached_holdout
        self.outcomes.update(other.outcomes)
        self.receipts.update(other.receipts)


def journey_funnel(
    definition: CampaignDefinition,
    places: Iterable[JourneyState],
    tallies: Mapping[TallyKey | None, Mapping[str, int]],
    receipts: Mapping[StepOf, Mapping[str, Mapping[str, int]]],
) -> tuple[list[JourneyFunnelStep], dict[str, list[JourneyFunnelStep]]]:
    """Every step with everyone's counts (the holdout's reach beside the treated's), and each arm's steps with its
    own persons' and messages' counts."""
    counts = _gather(definition, places, tallies, receipts)
    defined = dict(definition.all_steps())
    order = [*defined, *sorted({path for path, _ in counts} - set(defined))]
    everyone: list[JourneyFunnelStep] = []
    for path in order:
        total = _Counts()
        for (where, _), found in counts.items():
            if where == path:
                total.add(found)
        everyone.append(_funnel_step(path, defined.get(path), total, holdout=True))
    arms: dict[str, list[JourneyFunnelStep]] = {}
    for k, arm in enumerate(definition.variants):
        own = "steps" if arm.steps is None else f"variants[{k}].steps"
        runs = [p for p in order if p.startswith((f"{own}[", "paths.")) or (p, arm.name) in counts]
        arms[arm.name] = [
            _funnel_step(p, defined.get(p), counts.get((p, arm.name), _Counts()), holdout=False) for p in runs
        ]
    return everyone, arms


def _gather(
    definition: CampaignDefinition,
    places: Iterable[JourneyState],
    tallies: Mapping[TallyKey | None, Mapping[str, int]],
    receipts: Mapping[StepOf, Mapping[str, Mapping[str, int]]],
) -> dict[tuple[str, str | None], _Counts]:
    """(field path, arm) -> the counts of that step's persons and messages of that arm."""
    counts: dict[tuple[str, str | None], _Counts] = {}

    def at(variant: str | None, place: str) -> _Counts:
        path = step_path(definition, variant, place) or place  # a place of no known form shows as it is
        return counts.setdefault((path, variant), _Counts())

    for state in places:
        for place in state.reached:
            if state.group == "treatment":
                at(state.variant, place).reached += 1
            else:
                at(state.variant, place).reached_holdout += 1
    for key, outcomes in tallies.items():
        if key is not None:  # None: tallied before steps were kept (in the totals only)
            at(key.variant, key.place).outcomes.update(outcomes)
    for step_of, by_channel in receipts.items():
        for by_status in by_channel.values():
            at(step_of.variant, step_of.place).receipts.update(by_status)
    return counts


def _funnel_step(path: str, step: Step | None, counts: _Counts, holdout: bool) -> JourneyFunnelStep:
    # A message held or recorded before steps were kept moves only its step's counts once released or receipted:
    # such a count can dip below zero at its step (the totals stay right), so a step shows no less than none.
    outcomes = {name: n for name, n in counts.outcomes.items() if n > 0}
    receipts = {status: n for status, n in counts.receipts.items() if n > 0 and status in RANK}
    shown = dict(sorted(receipts.items(), key=lambda item: RANK[item[0]]))
    return JourneyFunnelStep(
        step=path,
        kind=step.kind if step is not None else None,
        channel=step.send.channel if step is not None and step.send is not None else None,
        reached=counts.reached,
        reached_holdout=counts.reached_holdout if holdout else None,
        sent=outcomes.get("sent", 0),
        suppressed={name: outcomes[name] for name in KEPT_BACK if name in outcomes},
        deferred=sum(outcomes.get(name, 0) for name in DEFERRED),
        failed=outcomes.get("failed", 0),
        receipts=shown,
        delivered=sum(n for status, n in receipts.items() if RANK[status] >= RANK["delivered"]),
        opened=receipts.get("opened", 0) + receipts.get("clicked", 0),
        clicked=receipts.get("clicked", 0),
    )
