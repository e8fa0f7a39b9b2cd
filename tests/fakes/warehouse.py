"""In-memory fakes of the warehouse ports: a profile store's persons and filed events, and the bucket."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

from cdp.warehouse.ports import FiledEventItem, PersonItem, SourceItem, WarehouseObjects, WarehouseSource


class InMemoryWarehouseSource(WarehouseSource):
    def __init__(self) -> None:
        self.persons: dict[str, PersonItem] = {}
        self.events: list[FiledEventItem] = []
        self.scans: list[tuple[date | None, str | None]] = []  # (since, brand) of each scan

    def scan(self, since: date | None, brand_id: str | None) -> Iterator[SourceItem]:
        self.scans.append((since, brand_id))
        for item in self.events:  # events before persons: the writer must not depend on the order
            event = item.event
            if brand_id in (None, event.brand_id) and (since is None or event.occurred_at.date() >= since):
                yield item
        for person in self.persons.values():
            if brand_id in (None, person.profile.brand_id):
                yield person


class InMemoryWarehouseObjects(WarehouseObjects):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[str] = []

    def keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix) and (start_after is None or k > start_after))

    def read(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def write(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self.objects[key] = body

    def upload(self, key: str, path: Path) -> int:
        self.objects[key] = path.read_bytes()
        self.uploads.append(key)
        return len(self.objects[key])

    def download(self, key: str, path: Path) -> None:
        path.write_bytes(self.objects[key])

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)
