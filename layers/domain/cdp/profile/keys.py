"""Key shapes of the profiles table (pk/sk names come from `cdp.topology.PROFILES_TABLE`).

Identifier records, filed events and suppressions live per identity namespace (a group, or a brand that resolves
alone). Events are filed under their anchor identifier, so they follow it through merges and splits unmoved.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from cdp.shared.time import iso

PROFILE_SK = "PROFILE"
TAGS_SK = "TAGS"  # the person's tags, scores and next tag expiry: written by the tag engine and the scorer only
IDENTIFIER_SK = "ID"
APPLIED_SK = "APPLIED"
SUPPRESSED_SK = "SUPPRESSED"

TIMELINE_PREFIX = "T#"
MESSAGE_PREFIX = "M#"
LINEAGE_PREFIX = "L#"
EDIT_PREFIX = "A#"
REVIEW_PREFIX = "Q#"
# H#{iso time}#{digest}: a chunk of tag value changes (cdp.tags.history). Items of the earlier layout,
# H#{tag}#{iso time} (one per change), are still read: a tag name starts with a letter, a time with a digit.
TAG_HISTORY_PREFIX = "H#"


def person_pk(person_id: str) -> str:
    return f"P#{person_id}"


def identifier_pk(namespace: str, identifier_key: str) -> str:
    return f"ID#{namespace}#{identifier_key}"


def anchor_pk(namespace: str, identifier_key: str) -> str:
    """The partition of the events filed under one identifier."""
    return f"E#{namespace}#{identifier_key}"


def suppressed_pk(namespace: str, identifier_key: str) -> str:
    """An erased identifier, stored only as a hash so the suppression list holds no personal data."""
    return f"SUP#{namespace}#{hashlib.sha256(identifier_key.encode()).hexdigest()}"


def review_pk(namespace: str) -> str:
    return f"REVIEW#{namespace}"


def applied_pk(dedupe_key: str) -> str:
    """Marker written in the same transaction that applies an event, so a redelivered event is applied once."""
    return f"APPLIED#{dedupe_key}"


def timeline_sk(occurred_at: datetime, event_id: str) -> str:
    return f"{TIMELINE_PREFIX}{iso(occurred_at)}#{event_id}"


def message_sk(sent_at: datetime, message_id: str) -> str:
    return f"{MESSAGE_PREFIX}{iso(sent_at)}#{message_id}"


def lineage_sk(at: datetime, digest: str) -> str:
    return f"{LINEAGE_PREFIX}{iso(at)}#{digest}"


def edit_sk(at: datetime, edit_id: str) -> str:
    return f"{EDIT_PREFIX}{iso(at)}#{edit_id}"


def tag_history_chunk_sk(first_at: datetime, digest: str) -> str:
    return f"{TAG_HISTORY_PREFIX}{iso(first_at)}#{digest}"


def review_sk(identifier_key: str) -> str:
    return f"{REVIEW_PREFIX}{identifier_key}"
