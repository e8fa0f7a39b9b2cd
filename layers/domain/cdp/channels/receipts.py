"""Receipts applied to the messages they belong to (`cdp.channels.lifecycle` for the rules)."""

from __future__ import annotations

from datetime import datetime, timedelta

from cdp.channels.lifecycle import receipt_of
from cdp.channels.ports import Applied, MessageLog
from cdp.ingest.events import CanonicalEvent
from cdp.observability import logger

# A receipt whose message is not recorded is kept for it only when it is this recent: a batch records its messages
# within minutes, and older receipts of unknown messages (a brand's history, another system's mail) are not ours.
ORPHAN_WINDOW = timedelta(days=1)


def apply_receipt(event: CanonicalEvent, log: MessageLog, applied: list[Applied], now: datetime) -> str:
    """Apply one event's receipt; appends what moved to `applied` (counted by the caller, once per batch). Returns
    what happened: moved, unchanged, not_a_receipt, kept (its message is not recorded yet: the log keeps the receipt
    for when it is) or unknown (an old receipt of no message of ours). The event itself is on the person's timeline
    either way."""
    receipt = receipt_of(event)
    if receipt is None:
        return "not_a_receipt"
    recent = now - receipt.at < ORPHAN_WINDOW
    outcome = log.apply(receipt, keep_orphan=recent)
    if outcome is None:
        logger.info("receipt of a message not recorded", event_id=receipt.event_id, kept=recent)
        return "kept" if recent else "unknown"
    applied.append(outcome)
    return "moved" if outcome.moved else "unchanged"
