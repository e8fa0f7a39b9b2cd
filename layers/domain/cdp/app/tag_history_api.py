"""`GET /v1/profiles/{person_id}/tags?as_of=...`: a person's tags as of a past instant (from `cdp.tags.history`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time

from pydantic import BaseModel, Field

from cdp.app.profile_views import facts_in_scope
from cdp.errors import InvalidInputError, NotFoundError
from cdp.ingest.auth import READ_PROFILES_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory
from cdp.profile.models import TagValue
from cdp.profile.ports import ProfileReader
from cdp.shared.time import to_utc
from cdp.tags.ports import TagHistory

TAG_NAME = re.compile(r"^(audience:)?[a-z][a-z0-9_]{0,63}$")
MAX_NAMES = 50


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
