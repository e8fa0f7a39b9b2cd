"""Which connector answers which HTTP route. `cdp.topology.API_ROUTES` lists the same paths (a test holds the two
together), and the ingest handler registers one route per entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from cdp.connectors.ads import AdsConnector
from cdp.connectors.base import Connector
from cdp.connectors.feedback import PushFeedbackConnector, SmsReceiptConnector
from cdp.connectors.feedback_ses import SesConnector, sns_status
from cdp.connectors.pos import PosConnector
from cdp.connectors.redirect import RedirectConnector
from cdp.connectors.segment import CALLS, SegmentBatch, SegmentConnector, SegmentMessage
from cdp.connectors.shopify import ShopifyConnector
from cdp.connectors.wechat import MiniProgramConnector, OfficialAccountConnector
from cdp.ingest.service import IngestResult
from cdp.shared.openapi import (
    STATUS_TEXT,
    ErrorBody,
    body,
    query,
    raw_body,
    responses,
    text_responses,
)


class ConnectorResult(IngestResult):
    """What a connector route answers (the channel-specific replies, such as WeChat's text, are documented apart)."""

    success: bool = Field(description="true when at least one event was accepted or already known")
    code: str | None = Field(default=None, description="on a 4xx: the error code (Segment SDKs read code + message)")
    message: str | None = Field(default=None, description="on a 4xx: what was wrong, in one line")


JSON_RESPONSES = responses(
    {202: (ConnectorResult, "every event accepted (or already known)"), 207: (ConnectorResult, "some rejected")},
    (401, 413, 415, 503),
) | {400: {"description": STATUS_TEXT[400], "content": {"application/json": {"model": ErrorBody | ConnectorResult}}}}


@dataclass(frozen=True)
class ConnectorRoute:
    method: str
    path: str  # API Gateway syntax; `{key}` is the source key (app id, shop, platform, vendor)
    factory: Callable[[], Connector]
    json_status: Callable[[int, int, int], int] | None = None  # (accepted, duplicates, rejected) -> HTTP status
    summary: str = ""
    request: dict[str, Any] = field(default_factory=dict)  # OpenAPI: body(...) / raw_body(...) / query(...)
    responses: dict[int, Any] = field(default_factory=lambda: JSON_RESPONSES)


_WEBHOOK = "Signed with the source's secret: x-cdp-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, '{t}.{body}')>"
_SEGMENT_RESPONSES = responses(
    {200: (ConnectorResult, "accepted (Segment SDKs only treat 200 as delivered)")}, (401, 413, 415, 503)
) | {400: {"description": STATUS_TEXT[400], "content": {"application/json": {"model": ErrorBody | ConnectorResult}}}}


def segment_status(accepted: int, duplicates: int, rejected: int) -> int:
    """Segment SDKs treat only 200 as delivered (and retry 5xx/429): a batch with some bad calls is still a 200."""
    return 400 if rejected and not (accepted or duplicates) else 200


def _segment(call: str) -> ConnectorRoute:
    model, name = (SegmentBatch, "SegmentBatch") if call == "batch" else (SegmentMessage, "SegmentMessage")
    return ConnectorRoute(
        "POST",
        f"/v1/{call}",
        lambda: SegmentConnector(call),
        segment_status,
        summary=f"Segment HTTP Tracking API: {call}",
        request=body(model, name, description="HTTP Basic auth: the write key as user name, empty password"),
        responses=_SEGMENT_RESPONSES,
    )


ROUTES: tuple[ConnectorRoute, ...] = (
    *(_segment(c) for c in (*CALLS, "batch")),
    # WeChat's pushes, signed with the app's token (GET: URL check, POST: pushes): an official account's server
    # callback, a mini-program's message push; and the mini-program server's own events
    ConnectorRoute(
        "GET",
        "/v1/wechat/{key}",
        OfficialAccountConnector,
        summary="WeChat official account or mini-program message push: server URL check (answers echostr)",
        request=query(signature="sha1 of sorted token, timestamp, nonce", timestamp="unix", nonce="", echostr=""),
        responses=text_responses({200: "the echostr"}, (401, 503)),
    ),
    ConnectorRoute(
        "POST",
        "/v1/wechat/{key}",
        OfficialAccountConnector,
        summary="WeChat official account (XML) or mini-program message push (XML or JSON): event pushes",
        request=raw_body("text/xml", "an XML push (a mini-program's may be JSON)")
        | query(signature="", timestamp="", nonce="", msg_signature="safe mode", encrypt_type="aes in safe mode"),
        responses=text_responses({200: "success"}),
    ),
    ConnectorRoute(
        "POST",
        "/v1/wechat/{key}/events",
        MiniProgramConnector,
        summary="WeChat mini-program events, posted by the mini-program's server",
        request=body(dict[str, Any], "MiniProgramEvents", description=_WEBHOOK),
    ),
    # commerce and ads webhooks: {key} is the Shopify shop domain, the POS vendor, the ad platform
    ConnectorRoute(
        "POST",
        "/v1/webhooks/shopify/{key}",
        ShopifyConnector,
        summary="Shopify webhooks (orders, refunds, customers); X-Shopify-Hmac-Sha256 over the raw body",
        request=body(dict[str, Any], "ShopifyWebhook"),
        responses=JSON_RESPONSES | responses({200: (None, "a topic this connector does not ingest")}, ()),
    ),
    ConnectorRoute(
        "POST",
        "/v1/webhooks/pos/{key}",
        PosConnector,
        summary="Cloud POS: sales, refunds, member sign-ups",
        request=body(dict[str, Any], "PosWebhook", description=_WEBHOOK),
    ),
    ConnectorRoute(
        "POST",
        "/v1/webhooks/ads/{key}",
        AdsConnector,
        summary="Ad platforms: click and lead-form callbacks",
        request=body(dict[str, Any], "AdCallback", description=_WEBHOOK),
    ),
    # delivery feedback: SES events through SNS, SMS receipts and push opens ({key}: the provider), link clicks
    ConnectorRoute(
        "POST",
        "/v1/feedback/ses",
        SesConnector,
        sns_status,
        summary="SES events through an SNS HTTPS subscription (SNS-signed)",
        request=raw_body("text/plain", "an SNS message: JSON text, as SNS posts it"),
        responses=_SEGMENT_RESPONSES,
    ),
    ConnectorRoute(
        "POST",
        "/v1/feedback/sms/{key}",
        SmsReceiptConnector,
        summary="SMS delivery receipts and replies",
        request=body(list[dict[str, Any]], "SmsReceipts", description=_WEBHOOK),
    ),
    ConnectorRoute(
        "POST",
        "/v1/feedback/push/{key}",
        PushFeedbackConnector,
        summary="Push notification receipts and opens",
        request=body(dict[str, Any], "PushEvents", description=_WEBHOOK),
    ),
    ConnectorRoute(
        "GET",
        "/r/{key}",
        RedirectConnector,
        summary="Tracked link: records the click and redirects ({key}: the signed link token, or an SMS's 9-character "
        "short code)",
        responses=responses({302: (None, "redirect to the link's target (Location)")}, (400, 404, 503)),
    ),
)


def connector_for(name: str, meta: dict[str, str]) -> Connector | None:
    """The connector that maps an archived request of `name` again (replay), from its archive metadata."""
    if name == SegmentConnector.name:
        return SegmentConnector(meta.get("call", "batch"))
    for route in ROUTES:
        connector = route.factory()
        if connector.name == name:
            return connector
    return None
