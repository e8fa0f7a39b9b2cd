"""Receipts applied to the messages they belong to (`cdp.channels.lifecycle` for the rules)."""

from __future__ import annotations

from cdp.channels.lifecycle import receipt_of
from cdp.channels.ports import Applied, MessageLog
from cdp.ingest.events import CanonicalEvent
from cdp.observability import logger


def apply_receipt(event: CanonicalEvent, log: MessageLog, applied: list[Applied]) -> str:
    """Apply one event's receipt; appends what moved to `applied` (counted by the caller, once per batch). Returns
    what happened: moved, unchanged, not_a_receipt, or kept (its message is not recorded yet, or not ours: the log
    keeps the receipt for when it is; the event itself is on the person's timeline either way)."""
    receipt = receipt_of(event)
    if receipt is None:
        return "not_a_receipt"
    outcome = log.apply(receipt)
    if outcome is None:
        logger.info("receipt kept for a message not recorded yet", event_id=receipt.event_id, channel=receipt.channel)
        return "kept"
    applied.append(outcome)
    return "moved" if outcome.moved else "unchanged"
