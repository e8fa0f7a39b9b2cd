"""Key shapes of the profiles table (pk/sk names come from `cdp.topology.PROFILES_TABLE`)."""

from __future__ import annotations

from datetime import datetime

from cdp.shared.time import iso

PROFILE_SK = "PROFILE"
IDENTIFIER_SK = "ID"
APPLIED_SK = "APPLIED"


def person_pk(person_id: str) -> str:
    return f"P#{person_id}"


def identifier_pk(identifier_key: str) -> str:
    return f"ID#{identifier_key}"


def applied_pk(dedupe_key: str) -> str:
    """Marker written in the same transaction that applies an event, so a redelivered event is applied once."""
    return f"APPLIED#{dedupe_key}"


def timeline_sk(occurred_at: datetime, event_id: str) -> str:
    return f"T#{iso(occurred_at)}#{event_id}"


def message_sk(sent_at: datetime, message_id: str) -> str:
    return f"M#{iso(sent_at)}#{message_id}"


TIMELINE_PREFIX = "T#"
MESSAGE_PREFIX = "M#"
