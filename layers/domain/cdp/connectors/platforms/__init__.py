"""Scheduled pulls of e-commerce shops (Tmall/Taobao through TOP, JD through JOS): member bindings, orders, refunds
and reviews become canonical events through the same archive -> validate -> dedupe -> publish path as every
inbound connector (see `service`)."""

from __future__ import annotations

from cdp.connectors.platforms.jd import JdClient
from cdp.connectors.platforms.ports import PlatformClient, Transport
from cdp.connectors.platforms.tmall import TopClient
from cdp.connectors.sources import PlatformShop


def client_for(shop: PlatformShop, transport: Transport) -> PlatformClient:
    return JdClient(shop, transport) if shop.platform == "jd" else TopClient(shop, transport)
