"""A message's lifecycle, and the receipts that move it.

    queued -> sent -> delivered -> opened -> clicked          (and, on the way: failed, bounced; at the end:
                                                                unsubscribed, complained)

A message shows the furthest status any receipt has proved, in this order: queued < sent < failed = bounced <
delivered < opened < clicked < unsubscribed < complained. So receipts may come late, out of order or twice and the
outcome is the same (an open proves the delivery whose receipt is still on its way; a delivery report arriving after
the open changes nothing; the same receipt twice is applied once). The first time of each status is kept.

Receipts are canonical events (`cdp.ingest.events`): message_delivered (delivered / bounced / failed), message_opened,
message_clicked, and a consent_changed that names the message it answers (an e-mail complaint or one-click
unsubscribe). They name our message id (SES tags, SMS OutId and context, push payloads, tracked links), or, where the
provider knows only its own id (a WeChat template job), that id with `provider` set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from cdp.ingest.events import CanonicalEvent

MessageStatus = Literal[
    "queued", "sent", "failed", "bounced", "delivered", "opened", "clicked", "unsubscribed", "complained"
]
STATUSES: tuple[str, ...] = get_args(MessageStatus)
RANK: dict[str, int] = {
    "queued": 0,
    "sent": 1,
    "failed": 2,
    "bounced": 2,
    "delivered": 3,
    "opened": 4,
    "clicked": 5,
    "unsubscribed": 6,
    "complained": 7,
}


class Receipt(BaseModel):
    """What a provider (or a click) said about one message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brand_id: str
    message_id: str = Field(description="ours; or the provider's when `provider` is set")
    provider: str | None = Field(default=None, description="set when message_id is the provider's own id")
    channel: str
    status: MessageStatus
    at: datetime
    code: str | None = Field(default=None, description="the provider's error code of a failure")
    event_id: str


def moves(current: str | None, new: str) -> bool:
    """Whether `new` replaces `current` as the status the message shows."""
    return current is None or RANK[new] > RANK.get(current, -1)


def receipt_of(event: CanonicalEvent) -> Receipt | None:
    """The receipt an event carries, or None (not about a message of ours)."""
    props: Any = event.properties
    extra = props.model_extra or {}
    status: str
    if event.event_type == "message_delivered":
        status = props.status
    elif event.event_type == "message_opened":
        status = "opened"
    elif event.event_type == "message_clicked":
        status = "clicked"
    elif event.event_type == "consent_changed" and isinstance(extra.get("message_id"), str) and not props.granted:
        status = "complained" if extra.get("complaint") is True else "unsubscribed"
    else:
        return None
    message_id = props.message_id if event.event_type != "consent_changed" else extra["message_id"]
    provider = extra.get("provider")
    code = extra.get("error_code")
    return Receipt(
        brand_id=event.brand_id,
        message_id=message_id,
        provider=provider if isinstance(provider, str) and provider else None,
        channel=str(props.channel),
        status=status,  # one of MessageStatus by the branches above
        at=event.occurred_at,
        code=str(code)[:64] if code else None,
        event_id=event.event_id,
    )
