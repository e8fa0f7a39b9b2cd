"""In-memory fake of `cdp.shared.ports.ObjectStore`, recording the order of writes (for "manifest last" checks)."""

from __future__ import annotations

import threading

from cdp.errors import NotFoundError
from cdp.shared.ports import ObjectStore


class InMemoryObjectStore(ObjectStore):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.writes: list[str] = []  # every put, in order
        self._lock = threading.Lock()

    def list_keys(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            if key not in self.objects:
                raise NotFoundError(f"{key} does not exist")
            return self.objects[key]

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        with self._lock:
            self.objects[key] = bytes(body)
            self.writes.append(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)

    # --- helpers for tests
    def __contains__(self, key: object) -> bool:
        return key in self.objects

    def __len__(self) -> int:
        return len(self.objects)
