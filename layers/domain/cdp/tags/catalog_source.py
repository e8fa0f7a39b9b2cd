"""Which tag catalog audiences are checked against: the brand's own files under `tags/catalog/` in the data bucket
when there are any, else the catalog bundled with the domain layer. Cached per warm container for a few minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cdp.errors import StoreError
from cdp.shared.ports import ObjectStore
from cdp.tags.catalog import CatalogError, TagCatalog, bundled_catalog

CATALOG_PREFIX = "tags/catalog/"
CATALOG_SUFFIXES = (".yaml", ".yml", ".json")


class CatalogSource:
    def __init__(
        self,
        objects: ObjectStore | None,
        prefix: str = CATALOG_PREFIX,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._objects = objects
        self._prefix = prefix
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, TagCatalog] | None = None

    def __call__(self) -> TagCatalog:
        with self._lock:
            if self._cached is not None and self._clock() - self._cached[0] < self._ttl:
                return self._cached[1]
            catalog = self._load()
            self._cached = (self._clock(), catalog)
            return catalog

    def _load(self) -> TagCatalog:
        if self._objects is None or not any(
            k.endswith(CATALOG_SUFFIXES) for k in self._objects.list_keys(self._prefix)
        ):
            return bundled_catalog()
        try:
            return TagCatalog.from_object_store(self._objects, self._prefix)
        except CatalogError as exc:
            # The deployment's catalog is broken: not the caller's fault (a 503 with the reason in the logs).
            raise StoreError(f"the tag catalog under {self._prefix} is invalid: {exc}") from exc
