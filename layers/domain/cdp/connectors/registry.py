"""Which connector answers which HTTP route. `cdp.topology.API_ROUTES` lists the same paths (a test holds the two
together), and the ingest handler registers one route per entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cdp.connectors.ads import AdsConnector
from cdp.connectors.base import Connector
from cdp.connectors.feedback import PushFeedbackConnector, SmsReceiptConnector
from cdp.connectors.feedback_ses import SesConnector, sns_status
from cdp.connectors.pos import PosConnector
from cdp.connectors.redirect import RedirectConnector
from cdp.connectors.segment import CALLS, SegmentConnector
from cdp.connectors.shopify import ShopifyConnector
from cdp.connectors.wechat import MiniProgramConnector, OfficialAccountConnector


@dataclass(frozen=True)
class ConnectorRoute:
    method: str
    path: str  # API Gateway syntax; `{key}` is the source key (app id, shop, platform, vendor)
    factory: Callable[[], Connector]
    json_status: Callable[[int, int, int], int] | None = None  # (accepted, duplicates, rejected) -> HTTP status


def segment_status(accepted: int, duplicates: int, rejected: int) -> int:
    """Segment SDKs treat only 200 as delivered (and retry 5xx/429): a batch with some bad calls is still a 200."""
    return 400 if rejected and not (accepted or duplicates) else 200


def _segment(call: str) -> ConnectorRoute:
    return ConnectorRoute("POST", f"/v1/{call}", lambda: SegmentConnector(call), segment_status)


ROUTES: tuple[ConnectorRoute, ...] = (
    *(_segment(c) for c in (*CALLS, "batch")),
    # WeChat official account server callback (GET: URL check, POST: pushes) and mini-program server events
    ConnectorRoute("GET", "/v1/wechat/{key}", OfficialAccountConnector),
    ConnectorRoute("POST", "/v1/wechat/{key}", OfficialAccountConnector),
    ConnectorRoute("POST", "/v1/wechat/{key}/events", MiniProgramConnector),
    # commerce and ads webhooks: {key} is the Shopify shop domain, the POS vendor, the ad platform
    ConnectorRoute("POST", "/v1/webhooks/shopify/{key}", ShopifyConnector),
    ConnectorRoute("POST", "/v1/webhooks/pos/{key}", PosConnector),
    ConnectorRoute("POST", "/v1/webhooks/ads/{key}", AdsConnector),
    # delivery feedback: SES events through SNS, SMS receipts and push opens ({key}: the provider), link clicks
    ConnectorRoute("POST", "/v1/feedback/ses", SesConnector, sns_status),
    ConnectorRoute("POST", "/v1/feedback/sms/{key}", SmsReceiptConnector),
    ConnectorRoute("POST", "/v1/feedback/push/{key}", PushFeedbackConnector),
    ConnectorRoute("GET", "/r/{key}", RedirectConnector),  # {key}: the signed link token
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
