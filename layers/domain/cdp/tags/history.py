"""Tag history: every value change of every tag, so any tag can be read as of a past instant (leakage-free training).

Where: in the person's own partition of the profiles table (`P#{person}`, see `cdp.profile.keys`). The tags item
carries the latest changes with the tag values (`pending`), so a tag never changes without its history entry and
a change costs no write of its own; when carrying them would grow the item past one write unit, the next write
files them first as one compressed chunk (`H#{iso time}#{digest}`, up to 40 changes). The history of a person is
one Query of the partition's `H#` range plus their tags item; an as-of read takes the latest change of each tag
at or before the instant; an erasure that deletes the person's partition takes the history with it.

When: a change caused by new data is stamped with the time tag_update processed it (what the platform knew then);
a change by time alone (an event leaving a window, a threshold of "days since" crossed, a static tag lapsing) is
stamped with the exact instant the evaluator predicted for it, even when the sweep ran later. So `tags_as_of(T)`
is what a real-time evaluation at T would have answered with the events known then.

Merges: the survivor's history is not combined with the merged-away person's. Before the merge the platform knew
two persons with two tag histories that may contradict each other (growth here, mature there); an as-of read must
answer what was known at that time, and that was the survivor's own tags. The merged-away person's history stays
readable under its own id (and goes with an erasure of the survivor, which erases both). The merge itself triggers
a full recompute (`identity_changed`), whose changes are recorded from that instant on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from cdp.profile.models import TagValue
from cdp.tags.ports import TagHistoryEntry


def as_of(entries: Iterable[TagHistoryEntry], at: datetime, names: Sequence[str] | None = None) -> dict[str, TagValue]:
    """The value each tag had at `at`: its latest change at or before `at` (a removal leaves it out)."""
    wanted = set(names) if names is not None else None
    latest: dict[str, TagHistoryEntry] = {}
    for entry in entries:
        if entry.at > at or (wanted is not None and entry.tag not in wanted):
            continue
        seen = latest.get(entry.tag)
        if seen is None or entry.at >= seen.at:
            latest[entry.tag] = entry
    return {
        tag: TagValue(value=entry.new, since=entry.at) for tag, entry in sorted(latest.items()) if entry.new is not None
    }
