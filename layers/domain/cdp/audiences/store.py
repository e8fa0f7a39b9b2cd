"""Audience definitions and snapshots in the object store (S3 on AWS).

    audiences/definitions/{id}.json                                 StoredAudience (version, times; a tombstone)
    audiences/snapshots/{id}/{snapshot_id}/members-00000.jsonl ...  one {"person_id": ...} per line
    audiences/snapshots/{id}/{snapshot_id}/manifest.json            SnapshotManifest, written last

A snapshot without its manifest is an export that did not finish: readers never see it. Versions are a
read-then-write (the object store has no conditional put here): two concurrent updates of one audience may both
claim the same version; the later write wins.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from pydantic import ValidationError

from cdp.audiences.models import (
    DEFINITIONS_PREFIX,
    AudienceDefinition,
    SnapshotManifest,
    StoredAudience,
    definition_key,
    snapshot_prefix,
)
from cdp.errors import NotFoundError, StoreError
from cdp.shared.ports import ObjectStore

MANIFEST = "manifest.json"
MEMBERS_PER_FILE = 50_000


def members_key(audience_id: str, snapshot_id: str, index: int) -> str:
    return f"{snapshot_prefix(audience_id, snapshot_id)}members-{index:05d}.jsonl"


def manifest_key(audience_id: str, snapshot_id: str) -> str:
    return f"{snapshot_prefix(audience_id, snapshot_id)}{MANIFEST}"


class AudienceStore:
    def __init__(self, objects: ObjectStore, members_per_file: int = MEMBERS_PER_FILE) -> None:
        self._objects = objects
        self._members_per_file = members_per_file

    # ---- definitions -----------------------------------------------------------------------------------------

    def _load(self, audience_id: str) -> StoredAudience | None:
        try:
            body = self._objects.get_bytes(definition_key(audience_id))
        except NotFoundError:
            return None
        try:
            return StoredAudience.model_validate_json(body)
        except ValidationError as exc:  # written by this code only: a broken document is a storage fault
            raise StoreError(f"{definition_key(audience_id)} is not a stored audience: {exc}") from exc

    def put(self, definition: AudienceDefinition, now: datetime) -> StoredAudience:
        """Create (version 1) or update (version + 1); a deleted audience defined again continues its versions."""
        previous = self._load(definition.id)
        if previous is None:
            stored = StoredAudience(definition=definition, version=1, created_at=now, updated_at=now)
        else:
            created = now if previous.deleted_at else previous.created_at
            stored = StoredAudience(
                definition=definition, version=previous.version + 1, created_at=created, updated_at=now
            )
        self._objects.put_bytes(definition_key(definition.id), stored.model_dump_json().encode())
        return stored

    def get(self, audience_id: str) -> StoredAudience:
        stored = self._load(audience_id)
        if stored is None or stored.deleted_at is not None:
            raise NotFoundError(f"no audience {audience_id!r}")
        return stored

    def list(self) -> list[StoredAudience]:
        """Every live audience, by id."""
        out = []
        for key in self._objects.list_keys(DEFINITIONS_PREFIX):
            if not key.endswith(".json"):
                continue
            stored = self._load(key.removeprefix(DEFINITIONS_PREFIX).removesuffix(".json"))
            if stored is not None and stored.deleted_at is None:
                out.append(stored)
        return sorted(out, key=lambda s: s.definition.id)

    def definitions(self) -> dict[str, AudienceDefinition]:
        return {s.definition.id: s.definition for s in self.list()}

    def dynamic_definitions(self) -> builtins.list[AudienceDefinition]:
        """The dynamic audiences whose memberships tag_update keeps as the tags `audience:<id>`."""
        return [s.definition for s in self.list() if s.definition.kind == "dynamic"]

    def delete(self, audience_id: str, now: datetime) -> StoredAudience:
        """Replace the definition with a tombstone (snapshots stay: campaigns that used them can be audited)."""
        stored = self.get(audience_id)
        tombstone = stored.model_copy(update={"version": stored.version + 1, "updated_at": now, "deleted_at": now})
        self._objects.put_bytes(definition_key(audience_id), tombstone.model_dump_json().encode())
        return tombstone

    # ---- snapshots -------------------------------------------------------------------------------------------

    def write_snapshot(self, manifest: SnapshotManifest, person_ids: Iterable[str]) -> SnapshotManifest:
        """Members files first, then the manifest (with the file keys and the count filled in)."""
        keys: list[str] = []
        count = 0
        chunk: list[str] = []

        def flush() -> None:
            key = members_key(manifest.audience_id, manifest.snapshot_id, len(keys))
            body = "".join(json.dumps({"person_id": pid}) + "\n" for pid in chunk)
            self._objects.put_bytes(key, body.encode(), "application/x-ndjson")
            keys.append(key)
            chunk.clear()

        for person_id in person_ids:
            chunk.append(person_id)
            count += 1
            if len(chunk) >= self._members_per_file:
                flush()
        if chunk or not keys:  # an empty audience still gets one (empty) members file: readers need no special case
            flush()
        final = manifest.model_copy(update={"count": count, "member_keys": keys})
        self._objects.put_bytes(
            manifest_key(manifest.audience_id, manifest.snapshot_id), final.model_dump_json().encode()
        )
        return final

    def snapshot(self, audience_id: str, snapshot_id: str) -> SnapshotManifest:
        try:
            body = self._objects.get_bytes(manifest_key(audience_id, snapshot_id))
        except NotFoundError as exc:
            raise NotFoundError(f"audience {audience_id!r} has no snapshot {snapshot_id!r}") from exc
        return SnapshotManifest.model_validate_json(body)

    def snapshot_ids(self, audience_id: str) -> builtins.list[str]:
        """Complete snapshots (with a manifest), oldest first (ids sort by export time)."""
        prefix = snapshot_prefix(audience_id)
        ids = [
            key.removeprefix(prefix).removesuffix(f"/{MANIFEST}")
            for key in self._objects.list_keys(prefix)
            if key.endswith(f"/{MANIFEST}")
        ]
        return sorted(ids)

    def snapshots(self, audience_id: str) -> builtins.list[SnapshotManifest]:
        """Newest first."""
        return [self.snapshot(audience_id, sid) for sid in reversed(self.snapshot_ids(audience_id))]

    def latest_snapshot(self, audience_id: str) -> SnapshotManifest:
        ids = self.snapshot_ids(audience_id)
        if not ids:
            raise NotFoundError(f"audience {audience_id!r} has no snapshot yet: export it first")
        return self.snapshot(audience_id, ids[-1])

    def members(self, manifest: SnapshotManifest) -> Iterator[str]:
        """The person ids of a snapshot, in the order written (sorted)."""
        for key in manifest.member_keys:
            for line in self._objects.get_bytes(key).decode("utf-8").splitlines():
                if line.strip():
                    yield str(json.loads(line)["person_id"])
