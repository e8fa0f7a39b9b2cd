"""The demo brand's ad accounts on the loopback: the fake Tencent Ads and Ocean Engine started together, and named
under `ad_platforms` in the local runtime's sources secret, so `POST /v1/audiences/{id}/activations` (and `cdp
audience activate`) upload to them. `cdp serve` (the local API server) runs them while it serves."""

from __future__ import annotations

import json
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from cdp import topology
from cdp_local.fakes.ocean_engine import FakeOceanEngine
from cdp_local.fakes.tencent_ads import FakeTencentAds

if TYPE_CHECKING:
    from cdp_local.runtime import LocalRuntime

BRAND = "demo-brand"


class LocalAdPlatforms:
    def __init__(self, runtime: LocalRuntime, brand_id: str = BRAND) -> None:
        self.runtime = runtime
        self.brand_id = brand_id
        self.tencent_ads = FakeTencentAds()
        self.ocean_engine = FakeOceanEngine()
        self._before: object = None

    def accounts(self) -> dict[str, object]:
        """The brand's `ad_platforms` entry of the sources secret."""
        return {"tencent_ads": self.tencent_ads.account(), "ocean_engine": self.ocean_engine.account()}

    def start(self) -> Self:
        self.tencent_ads.start()
        self.ocean_engine.start()
        with self.runtime.lock:
            document = self._document()
            self._before = document.get("ad_platforms", {}).get(self.brand_id)
            document["ad_platforms"] = {**document.get("ad_platforms", {}), self.brand_id: self.accounts()}
            self._save(document)
        return self

    def stop(self) -> None:
        """Stop the fakes and give the brand back the accounts it had (none, usually)."""
        with self.runtime.lock:
            document = self._document()
            platforms = dict(document.get("ad_platforms", {}))
            if self._before is None:
                platforms.pop(self.brand_id, None)
            else:
                platforms[self.brand_id] = self._before
            document["ad_platforms"] = platforms
            self._save(document)
        self.tencent_ads.stop()
        self.ocean_engine.stop()

    def _document(self) -> dict[str, Any]:
        secrets = self.runtime.client("secretsmanager")
        document: dict[str, Any] = json.loads(
            secrets.get_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME)["SecretString"]
        )
        return document

    def _save(self, document: dict[str, Any]) -> None:
        secrets = self.runtime.client("secretsmanager")
        secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(document))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
