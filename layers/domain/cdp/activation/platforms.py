"""The brands' ad accounts from the sources secret (`ad_platforms`), each as its platform's adapter with retries."""

from __future__ import annotations

import time
from collections.abc import Callable

from cdp.activation.ocean_engine import OceanEngine
from cdp.activation.ports import AdPlatform, AdPlatforms, Backoff, PlatformName, RetryingAdPlatform
from cdp.activation.tencent_ads import TencentAds
from cdp.connectors.sources import SourceRegistry
from cdp.shared.http import HttpTransport


class SourceAdPlatforms(AdPlatforms):
    def __init__(
        self,
        sources: SourceRegistry,
        transport: HttpTransport | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sources = sources
        self._transport = transport
        self._backoff = backoff or Backoff()
        self._sleep = sleep

    def platform(self, brand_id: str, name: PlatformName) -> AdPlatform | None:
        accounts = self._sources.sources().ad_platforms.get(brand_id)
        inner: AdPlatform | None = None
        if accounts is not None and name == "tencent_ads" and accounts.tencent_ads is not None:
            inner = TencentAds(accounts.tencent_ads, self._transport)
        elif accounts is not None and name == "ocean_engine" and accounts.ocean_engine is not None:
            inner = OceanEngine(accounts.ocean_engine, self._transport)
        return None if inner is None else RetryingAdPlatform(inner, self._backoff, self._sleep)
