"""In-memory fake of the campaign artifact store (`cdp.campaigns.ports.ArtifactStore`), with assertion helpers."""

from __future__ import annotations

import json
import threading
from typing import Any

from cdp.campaigns.ports import ArtifactStore
from cdp.errors import NotFoundError


class InMemoryArtifactStore(ArtifactStore):
    def __init__(self) -> None:
        self.documents: dict[str, str] = {}  # stored as JSON text, so a non-serializable document fails like S3 would
        self._lock = threading.Lock()

    def put_json(self, key: str, document: Any) -> None:
        with self._lock:
            self.documents[key] = json.dumps(document)

    def get_json(self, key: str) -> Any:
        with self._lock:
            if key not in self.documents:
                raise NotFoundError(f"{key} does not exist")
            return json.loads(self.documents[key])

    def exists(self, key: str) -> bool:
        return key in self.documents

    # --- helpers for tests
    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.documents if k.startswith(prefix))

    def __contains__(self, key: object) -> bool:
        return key in self.documents
