"""Which connector answers which HTTP route. `cdp.topology.API_ROUTES` lists the same paths (a test holds the two
together), and the ingest handler registers one route per entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cdp.connectors.base import Connector
from cdp.connectors.segment import CALLS, SegmentConnector


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


ROUTES: tuple[ConnectorRoute, ...] = (*(_segment(c) for c in (*CALLS, "batch")),)
