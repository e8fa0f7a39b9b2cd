"""What SES does after a send that names a configuration set, which moto does not: publish the message's events to
the account's default EventBridge bus. Here every such send is delivered (`Email Delivered`, source `aws.ses`, the
SES event as the detail: mail with its tags, delivery with its recipients), so the local runtime's messages come
back through the same rule, function and mapping as on AWS (`cdp.topology.DELIVERY_EVENTS_RULE`).

Installed on boto3's default session (where the handlers make their clients) while the runtime runs; the event is
put from a second client, so the hook does not see its own call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3

from cdp.shared.time import iso, utc_now


def delivered_event(params: dict[str, Any], ses_message_id: str, at: datetime) -> dict[str, Any]:
    """The `put_events` entry SES would publish for a delivered SendEmail (its parameters, its answer's id)."""
    recipients = list(params.get("Destination", {}).get("ToAddresses", []))
    tags = {tag["Name"]: [tag["Value"]] for tag in params.get("EmailTags", [])}
    tags["ses:configuration-set"] = [params["ConfigurationSetName"]]
    detail = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": iso(at),
            "source": params.get("FromEmailAddress", ""),
            "messageId": ses_message_id,
            "destination": recipients,
            "tags": tags,
        },
        "delivery": {
            "timestamp": iso(at),
            "processingTimeMillis": 420,
            "recipients": recipients,
            "smtpResponse": "250 2.0.0 OK",
        },
    }
    return {
        "Source": "aws.ses",
        "DetailType": "Email Delivered",
        "Detail": json.dumps(detail),
        "EventBusName": "default",
    }


@contextmanager
def ses_delivery_events(region: str) -> Iterator[list[dict[str, Any]]]:
    """Publish a delivery event for every SES v2 SendEmail naming a configuration set; yields the events put."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    publisher = boto3.session.Session(region_name=region).client("events")  # its own session: no hook on it
    published: list[dict[str, Any]] = []

    def after_send(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        params = kwargs.get("context", {}).get("cdp_params") or {}
        if not params.get("ConfigurationSetName") or "MessageId" not in parsed:
            return  # no configuration set: SES publishes nothing
        entry = delivered_event(params, parsed["MessageId"], utc_now())
        publisher.put_events(Entries=[entry])
        published.append(entry)

    def keep_params(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["cdp_params"] = dict(params)

    session.events.register("provide-client-params.sesv2.SendEmail", keep_params)
    session.events.register("after-call.sesv2.SendEmail", after_send)
    try:
        yield published
    finally:
        session.events.unregister("provide-client-params.sesv2.SendEmail", keep_params)
        session.events.unregister("after-call.sesv2.SendEmail", after_send)
