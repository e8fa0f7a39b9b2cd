"""Tag history: every value change of every tag, so any tag can be read as of a past instant (leakage-free training).

Where: one item per change in the person's own partition of the profiles table (`P#{person}`,
`H#{tag}#{iso time}`, see `cdp.profile.keys`). Why there: it is written in the same transaction as the tags
themselves (a tag never changes without its history entry), an as-of read of one tag is one Query of one item
(`sk <= H#{tag}#{as_of}`, newest first, Limit 1), all tags as of a time are one Query of the partition's `H#`
range, and an erasure that deletes the person's partition takes the history with it.

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
