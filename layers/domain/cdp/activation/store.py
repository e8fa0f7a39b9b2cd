"""Activation records in the object store (S3 on AWS), beside the audience's snapshots:

    audiences/activations/{audience_id}/{activation_id}.json     Activation (counts only: no identifier, no hash)

A record is written when an activation starts (`running`) and again after each part; the object store has no
conditional put here, so two requests continuing one activation at once would both upload the same part (the
platforms keep one copy of an id) and the later write wins the counts.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from cdp.activation.models import Activation
from cdp.audiences.models import AUDIENCES_PREFIX
from cdp.errors import NotFoundError, StoreError
from cdp.shared.ports import ObjectStore

ACTIVATIONS_PREFIX = f"{AUDIENCES_PREFIX}activations/"


def activation_key(audience_id: str, activation_id: str) -> str:
    return f"{ACTIVATIONS_PREFIX}{audience_id}/{activation_id}.json"


class ActivationStore:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def put(self, activation: Activation) -> None:
        key = activation_key(activation.audience_id, activation.activation_id)
        self._objects.put_bytes(key, activation.model_dump_json().encode())

    def get(self, audience_id: str, activation_id: str) -> Activation:
        key = activation_key(audience_id, activation_id)
        try:
            body = self._objects.get_bytes(key)
        except NotFoundError as exc:
            raise NotFoundError(f"audience {audience_id!r} has no activation {activation_id!r}") from exc
        return self._parse(key, body)

    def activations(self, audience_id: str) -> list[Activation]:
        """Newest first (ids sort by start time)."""
        prefix = f"{ACTIVATIONS_PREFIX}{audience_id}/"
        keys = [k for k in self._objects.list_keys(prefix) if k.endswith(".json")]
        return [self._parse(k, self._objects.get_bytes(k)) for k in sorted(keys, reverse=True)]

    def members(self, member_keys: list[str], start: int, count: int) -> list[str]:
        """A slice of a snapshot's person ids (`snapshot_members`)."""
        return snapshot_members(self._objects, member_keys, start, count)

    @staticmethod
    def _parse(key: str, body: bytes) -> Activation:
        try:
            return Activation.model_validate_json(body)
        except ValidationError as exc:  # written by this code only: a broken record is a storage fault
            raise StoreError(f"{key} is not an activation record: {exc}") from exc


def snapshot_members(objects: ObjectStore, member_keys: list[str], start: int, count: int) -> list[str]:
    """Person ids `start` to `start + count` of a snapshot, in the order written. The members files are the audience
    store's (`cdp.audiences.store`: one {"person_id": ...} per line); lines before `start` are counted, not parsed,
    so the 100th part of a large snapshot costs no more CPU than the first."""
    out: list[str] = []
    seen = 0
    for key in member_keys:
        if len(out) >= count:
            break
        lines = [line for line in objects.get_bytes(key).decode("utf-8").splitlines() if line.strip()]
        if seen + len(lines) <= start:
            seen += len(lines)
            continue
        for line in lines[max(start - seen, 0) :]:
            out.append(str(json.loads(line)["person_id"]))
            if len(out) >= count:
                break
        seen += len(lines)
    return out
