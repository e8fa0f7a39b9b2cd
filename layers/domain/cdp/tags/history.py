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

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time

from pydantic import BaseModel, Field

from cdp.errors import InvalidInputError, NotFoundError
from cdp.ingest.auth import READ_PROFILES_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory
from cdp.profile.models import TagValue
from cdp.profile.ports import ProfileReader
from cdp.profile.views import facts_in_scope
from cdp.shared.time import to_utc
from cdp.tags.ports import TagHistory, TagHistoryEntry

TAG_NAME = re.compile(r"^(audience:)?[a-z][a-z0-9_]{0,63}$")
MAX_NAMES = 50


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


class TagsAsOfView(BaseModel):
    """`GET /v1/profiles/{person_id}/tags?as_of=...`: the tags a person had at a past instant."""

    person_id: str = Field(description="the surviving person the id resolves to")
    requested_id: str
    as_of: datetime
    tags: dict[str, TagValue] = Field(description="tag -> value, with `since` the instant that value was set")


def parse_as_of(text: str | None) -> datetime:
    """ISO 8601 time (a date means its start, UTC; a time without a zone is UTC)."""
    if not text:
        raise InvalidInputError("as_of is required: an ISO 8601 time such as 2026-03-01T00:00:00Z", "as_of")
    try:
        if len(text) == 10:
            return datetime.combine(datetime.fromisoformat(text).date(), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return to_utc(parsed) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(f"as_of {text!r} is not an ISO 8601 time (e.g. 2026-03-01T00:00:00Z)", "as_of") from exc


def parse_tag_names(text: str | None) -> list[str] | None:
    """`tag=a` or `tag=a,b`: the tags to read (tag names or `audience:<id>`); None reads every tag."""
    if text is None or text == "":
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not TAG_NAME.match(n)]
    if bad:
        raise InvalidInputError(f"tag {bad[0]!r} is not a tag name (lower_snake_case, or audience:<id>)", "tag")
    if len(names) > MAX_NAMES:
        raise InvalidInputError(f"at most {MAX_NAMES} tags per request", "tag")
    return sorted(set(names))


def tags_as_of_view(
    client: ApiClient,
    person_id: str,
    as_of_text: str | None,
    tag_text: str | None,
    reader: ProfileReader,
    history: TagHistory,
    org: OrgDirectory,
) -> TagsAsOfView:
    """The person's tags as of a time, for a key that may read profiles and sees something of this person."""
    authorize(client, READ_PROFILES_SCOPE)
    at = parse_as_of(as_of_text)
    names = parse_tag_names(tag_text)
    profile = reader.get(person_id)
    if profile is None or profile.dissolved or facts_in_scope(profile, org, client.org_scope) is None:
        raise NotFoundError(f"no person {person_id}")
    tags = history.tags_as_of(profile.person_id, at, names)
    return TagsAsOfView(person_id=profile.person_id, requested_id=person_id, as_of=at, tags=tags)
