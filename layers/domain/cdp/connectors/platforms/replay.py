"""Map an archived platform page again (archive replay): the page's answer, its kind and method, the shop and brand
are in the archived object and its metadata; the buyer of each order comes from the pull state."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import unquote

from pydantic import SecretStr

from cdp.connectors.platforms import jd, tmall
from cdp.connectors.platforms.ports import Kind, MapContext, MappedPage, Page
from cdp.connectors.sources import PlatformShop
from cdp.errors import InvalidInputError

PREFIX = "platform-"


def is_platform_source(source: str) -> bool:
    return source.startswith(PREFIX)


def map_archived_page(meta: dict[str, str], body: bytes, buyer_of: Callable[[str, str], str | None]) -> MappedPage:
    platform = meta.get("connector", "").removeprefix(PREFIX)
    try:
        kind, method, shop_id, brand_id = Kind(meta["kind"]), meta["method"], unquote(meta["shop-id"]), meta["brand-id"]
        response = json.loads(body)
    except (KeyError, ValueError) as exc:
        raise InvalidInputError(f"archived platform page lacks what replay needs: {exc}", "meta") from exc
    module = jd if platform == "jd" else tmall
    # the mapping reads only the shop's brand and platform; no credential is needed to map an answer again
    shop = PlatformShop(brand_id=brand_id, platform=platform, app_key="replay", app_secret=SecretStr("unused"))
    page = Page(kind, method, response, module.records_of(kind, method, response), None)
    return module.map_page(page, MapContext(shop_id, shop, lambda order_id: buyer_of(shop_id, order_id)))
