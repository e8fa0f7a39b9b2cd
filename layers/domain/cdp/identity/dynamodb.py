"""DynamoDB adapter of the identity ports: identifier records, events filed under their anchor identifier, applied
markers, lineage, suppressions and the review queue, committed with the persons they change in one transaction;
an existing person's event that changes nothing else is two conditional writes, or, in a batch
(`deferred_writes`), filed with the batch's events and folded into one write of the person at the end (key shapes in
`cdp.profile.keys`; the person item is the profile store's)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import ConflictError, InvalidInputError, StoreError
from cdp.identity.ports import EventAlreadyFiled, HistorySink, IdentityStore, LostWrite, NeedsSettling
from cdp.identity.resolution import IdentifierRecord, LineageRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.profile import keys
from cdp.profile.dynamodb import (
    MAX_TRANSACTION_ITEMS,
    PK,
    SK,
    DynamoProfileStore,
    annotation_writes,
    profile_item,
    profile_tags_item,
    profile_write,
    put,
)
from cdp.profile.models import Profile
from cdp.shared.dynamo import to_item
from cdp.shared.time import iso, parse_iso


class TimelineKeyTakenError(InvalidInputError):
    """Another event already holds this event's filed key (permanent: the message is dead-lettered with this)."""


class DynamoIdentityStore(DynamoProfileStore, IdentityStore, HistorySink):
    """Resolution reads and writes whole persons, so the identity store is the profile store plus its own items."""

    # ---- identity store -----------------------------------------------------------------------------------

    def lookup_identifiers(self, namespace: str, keys_: Iterable[str]) -> dict[str, IdentifierRecord]:
        items = self._batch_get([(keys.identifier_pk(namespace, k), keys.IDENTIFIER_SK) for k in keys_])
        return {item["identifier"]: _to_record(item) for item in items}

    def suppressed(self, namespace: str, keys_: Iterable[str]) -> set[str]:
        wanted = {keys.suppressed_pk(namespace, k): k for k in keys_}
        items = self._batch_get([(pk, keys.SUPPRESSED_SK) for pk in wanted])
        return {wanted[item[PK]] for item in items}

    def lookup_with_suppression(
        self, namespace: str, keys_: Iterable[str]
    ) -> tuple[dict[str, IdentifierRecord], set[str]]:
        wanted = sorted(set(keys_))
        hashed = {keys.suppressed_pk(namespace, k): k for k in wanted}
        items = self._batch_get(
            [(keys.identifier_pk(namespace, k), keys.IDENTIFIER_SK) for k in wanted]
            + [(pk, keys.SUPPRESSED_SK) for pk in hashed]
        )
        records = {item["identifier"]: _to_record(item) for item in items if item[SK] == keys.IDENTIFIER_SK}
        return records, {hashed[item[PK]] for item in items if item[SK] == keys.SUPPRESSED_SK}

    def events_anchored(self, namespace: str, keys_: Iterable[str]) -> list[tuple[str, CanonicalEvent]]:
        """Consistent reads: a split or a fold again must see every event filed before it (and those this batch
        is about to file)."""
        deferred = self._deferred()
        waiting = [i for items in deferred.filed.values() for i in items] if deferred else []
        out: list[tuple[str, CanonicalEvent]] = []
        for key in sorted(set(keys_)):
            pk = keys.anchor_pk(namespace, key)
            stored = self._query_prefix(pk, keys.TIMELINE_PREFIX, consistent=True)
            seen = {item[SK] for item in stored}
            out.extend((key, parse_event(item["event"])) for item in stored)
            out.extend(
                (key, parse_event(raw["event"]["S"]))
                for raw in waiting
                if raw[PK]["S"] == pk and raw[SK]["S"] not in seen
            )
        return out

    def read_filed(self, namespace: str, anchored: Iterable[tuple[str, CanonicalEvent]]) -> None:
        """Whether the batch's events are filed already, read in one round and kept with the batch's reads."""
        self._batch_get(
            [(keys.anchor_pk(namespace, a), keys.timeline_sk(e.occurred_at, e.event_id)) for a, e in anchored]
        )

    # ---- deferred writes: one write per person per batch --------------------------------------------------------

    @contextmanager
    def deferred_writes(self) -> Iterator[None]:
        """While a batch is processed (inside `batch_reads`, after `read_filed`): an existing person's event with
        nothing else to change is planned on the person as the batch left them, and written by `flush_deferred`,
        which files the batch's events first (BatchWriteItem, 25 a call) and then writes each person once, at the
        version read. A change that touches a deferred person otherwise raises NeedsSettling first."""
        self._local.deferred = _Deferred()
        try:
            yield
        finally:
            self._local.deferred = None

    def _deferred(self) -> _Deferred | None:
        deferred: _Deferred | None = getattr(self._local, "deferred", None)
        return deferred

    def flush_deferred(self, person_ids: Iterable[str] | None = None) -> list[LostWrite]:
        deferred = self._deferred()
        if deferred is None:
            return []
        wanted = list(deferred.persons) if person_ids is None else [p for p in person_ids if p in deferred.persons]
        filed = [item for pid in wanted for item in deferred.filed.pop(pid, [])]
        for start in range(0, len(filed), 25):
            self._batch_put(filed[start : start + 25])
        lost: list[LostWrite] = []
        for pid in wanted:
            profile, stored_version = deferred.persons.pop(pid)
            anchors = deferred.anchors.pop(pid, set())
            try:
                self.put_person(profile, stored_version)
            except ConflictError:
                lost.append(LostWrite(profile.brand_id, tuple(sorted(anchors))))
        return lost

    def _defer(self, deferred: _Deferred, plan: ResolutionPlan, event: CanonicalEvent) -> bool | None:
        """Defer an existing person's event (True), find it applied by this batch already (False), or None: its
        filing was not read ahead, so it is written now."""
        assert plan.anchor is not None
        filed = to_item(_filed_item(plan.namespace, plan.anchor, event))
        key = (filed[PK]["S"], filed[SK]["S"])
        cache = self._cache()
        if cache is None or key not in cache:
            return None
        if key in deferred.events:  # filed by this batch
            if deferred.events[key] == event.dedupe_key:
                return False
            raise _key_taken(key, event, deferred.events[key])
        held = cache[key]
        if held is not None:  # filed before the batch: maybe not included yet (EventAlreadyFiled folds again)
            _check_held(key, held, event)
            raise EventAlreadyFiled(by_this_attempt=False)
        write = plan.profiles[0]
        person_id = write.profile.person_id
        stored_version = deferred.persons[person_id][1] if person_id in deferred.persons else write.expected_version
        deferred.persons[person_id] = (write.profile, stored_version or 0)
        deferred.filed.setdefault(person_id, []).append(filed)
        deferred.anchors.setdefault(person_id, set()).add(plan.anchor)
        deferred.events[key] = event.dedupe_key
        self._remember([filed, to_item(profile_item(write.profile))])
        return True

    def lineage(self, person_id: str) -> list[LineageRecord]:
        return [_to_lineage(item) for item in self._query_prefix(keys.person_pk(person_id), keys.LINEAGE_PREFIX)]

    def review_queue(self, namespace: str) -> list[dict[str, Any]]:
        """Identifiers quarantined in a namespace, for a person to review (oldest first)."""
        items = self._query_prefix(keys.review_pk(namespace), keys.REVIEW_PREFIX)
        return [{k: v for k, v in item.items() if k not in (PK, SK)} for item in items]

    def commit(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> bool:
        deferred = self._commit_deferred(plan, event)
        if deferred is not None:
            return deferred
        if event is not None and self._one_person_write(plan):
            return self._file_then_write(plan, event)
        core, extra = _transaction(self._table, plan, event)
        if len(core) > MAX_TRANSACTION_ITEMS:
            raise StoreError(f"an identity change needs {len(core)} writes in one transaction; the limit is 100")
        if len(core) + len(extra) <= MAX_TRANSACTION_ITEMS:
            core, extra = core + extra, []
        written = [_write_key(w) for w in core]
        try:
            self._db.transact_write_items(TransactItems=core)  # type: ignore[arg-type]
        except ClientError as exc:
            self._reset_reads()
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise StoreError(f"identity commit failed: {exc}") from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if event is not None and reasons and reasons[0] == "ConditionalCheckFailed":
                filed = core[0]["Put"]["Item"]
                self._check_redelivery(filed, event)
                if filed[SK]["S"] == keys.APPLIED_SK:
                    return False  # marked in a transaction that applied it: a redelivery
                # Filed already: maybe by an attempt that filed it and stopped before the person's write.
                raise EventAlreadyFiled(by_this_attempt=False) from exc
            raise ConflictError(f"concurrent identity change: {reasons}") from exc
        except BotoCoreError as exc:
            self._reset_reads()
            raise StoreError(f"identity commit failed: {exc}") from exc
        self._forget(key for w, key in zip(core, written, strict=True) if "Put" not in w)
        self._remember(w["Put"]["Item"] for w in core if "Put" in w)
        for start in range(0, len(extra), 25):  # lineage and review entries of a very large change
            self._batch_put([e["Put"]["Item"] for e in extra[start : start + 25]])
        return True

    def _commit_deferred(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> bool | None:
        """The outcome when the change is deferred (or found applied by this batch); None: commit it now."""
        deferred = self._deferred()
        if deferred is None:
            return None
        if event is not None and self._one_person_write(plan):
            outcome = self._defer(deferred, plan, event)
            if outcome is not None:
                return outcome
        waiting = {w.profile.person_id for w in plan.profiles} & deferred.persons.keys()
        if waiting:
            raise NeedsSettling(waiting)
        return None

    def _one_person_write(self, plan: ResolutionPlan) -> bool:
        """The common case: an existing person's event with nothing else to change (no identifier, link, lineage
        or tags item): two conditional writes instead of a transaction, which bills each item twice."""
        if plan.anchor is None or len(plan.profiles) != 1 or plan.identifiers or plan.lineage or plan.newly_shared:
            return False
        write = plan.profiles[0]
        return write.expected_version is not None and not annotation_writes(self._table, write.profile)

    def _file_then_write(self, plan: ResolutionPlan, event: CanonicalEvent) -> bool:
        """File the event (its key is its marker), then write the person at the version read. Either may stop
        the other: a filed event the person does not include yet is found by the next attempt or redelivery
        (EventAlreadyFiled), which folds the person again from their filed events."""
        assert plan.anchor is not None
        write = plan.profiles[0]
        filed = to_item(_filed_item(plan.namespace, plan.anchor, event))
        try:
            self._db.put_item(
                TableName=self._table,
                Item=filed,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise StoreError(f"filing {event.dedupe_key} failed: {exc}") from exc
            self._check_redelivery(filed, event)
            raise EventAlreadyFiled(by_this_attempt=False) from exc
        except BotoCoreError as exc:
            raise StoreError(f"filing {event.dedupe_key} failed: {exc}") from exc
        try:
            self.put_person(write.profile, write.expected_version or 0)
        except ConflictError as exc:
            raise EventAlreadyFiled(by_this_attempt=True) from exc
        return True

    def put_person(self, profile: Profile, expected_version: int) -> None:
        deferred = self._deferred()
        if deferred is not None and profile.person_id in deferred.persons:
            raise NeedsSettling([profile.person_id])
        person = profile_write(self._table, profile, expected_version)["Put"]
        try:
            self._db.put_item(**person)
        except ClientError as exc:
            self._reset_reads()
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"person {profile.person_id} moved past version {expected_version}") from exc
            raise StoreError(f"write of person {profile.person_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            self._reset_reads()
            raise StoreError(f"write of person {profile.person_id} failed: {exc}") from exc
        self._remember([person["Item"]])

    def _reset_reads(self) -> None:
        """After a lost race every read the batch kept may be stale, and fresh and stale reads mixed (an identifier
        record newer than the person it names) would plan wrong: drop them all, keeping only what this batch
        deferred (its own writes-to-be, which nobody else's write can make current)."""
        cache = self._cache()
        if cache is None:
            return
        cache.clear()
        deferred = self._deferred()
        if deferred is not None:
            filed = [item for items in deferred.filed.values() for item in items]
            self._remember([*filed, *(to_item(profile_item(p)) for p, _ in deferred.persons.values())])

    def _check_redelivery(self, written: dict[str, Any], event: CanonicalEvent) -> None:
        key = (written[PK]["S"], written[SK]["S"])
        if key[1] != keys.APPLIED_SK:
            _check_held(key, self._get_stored(*key), event)

    # ---- history import (cdp.identity.history) -----------------------------------------------------------------

    def namespace_is_empty(self, namespace: str, sample_keys: Sequence[str]) -> bool:
        return not self.lookup_identifiers(namespace, sample_keys)

    def write_history_persons(
        self, namespace: str, profiles: Sequence[Profile], filed: Sequence[tuple[str, CanonicalEvent]]
    ) -> dict[str, int]:
        groups: dict[str, list[dict[str, Any]]] = {
            "profiles": [profile_item(p) for p in profiles],
            "tags": [profile_tags_item(p, 1) for p in profiles if p.tags or p.scores or p.next_tag_expiry],
            "events": [_filed_item(namespace, anchor, e) for anchor, e in filed],  # each its own applied marker
        }
        return self._put_groups(groups)

    def write_history_identifiers(
        self, namespace: str, records: Sequence[IdentifierRecord], hubs: Sequence[str]
    ) -> dict[str, int]:
        groups: dict[str, list[dict[str, Any]]] = {
            "identifiers": [_identifier_item(namespace, r) for r in records],
            "review_entries": [
                {
                    PK: keys.review_pk(namespace),
                    SK: keys.review_sk(k),
                    "identifier": k,
                    "reason": "hub",
                    "source": "import",
                }
                for k in hubs
            ],
        }
        return self._put_groups(groups)

    def _put_groups(self, groups: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        for items in groups.values():
            for start in range(0, len(items), 25):
                self._batch_put([to_item(i) for i in items[start : start + 25]])
        return {name: len(items) for name, items in groups.items()}


@dataclass
class _Deferred:
    """What a batch has planned and not written yet (`DynamoIdentityStore.deferred_writes`)."""

    persons: dict[str, tuple[Profile, int]] = field(default_factory=dict)  # id -> (as planned, version stored)
    filed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # person id -> their events' filed items
    anchors: dict[str, set[str]] = field(default_factory=dict)  # person id -> what those events are filed under
    events: dict[tuple[str, str], str] = field(default_factory=dict)  # filed key -> dedupe key, this batch's


def _check_held(key: tuple[str, str], stored: dict[str, Any] | None, event: CanonicalEvent) -> None:
    """What holds the event's filed key is this event, not another that shares it (the same identifier, instant
    and event id from another source): that one would be refused for good, with its reason, never dropped."""
    held = parse_event(stored["event"]) if stored and "event" in stored else None
    if held is not None and held.dedupe_key != event.dedupe_key:
        raise _key_taken(key, event, held.dedupe_key)


def _key_taken(key: tuple[str, str], event: CanonicalEvent, holder: str) -> TimelineKeyTakenError:
    return TimelineKeyTakenError(
        f"event {event.dedupe_key} would be filed under {key[0]} {key[1]}, which holds {holder}: "
        "two sources sent the same event id for one identifier at the same instant",
        "event_id",
    )


def _transaction(
    table: str, plan: ResolutionPlan, event: CanonicalEvent | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(writes that must be atomic, history entries that may follow when the transaction would be too large)."""
    core: list[dict[str, Any]] = []
    if event is not None:
        # First on purpose: a cancellation reason at index 0 means "already applied". The filed event is its own
        # marker: its key is a function of the event alone (the anchor comes from the event's identifiers and the
        # brand's rules, then its time and id), so a redelivery finds it. An event filed nowhere (no anchor) keeps
        # a separate marker, as every event did before.
        if plan.anchor is not None:
            filed = _filed_item(plan.namespace, plan.anchor, event)
            core.append(put(table, filed, "attribute_not_exists(#pk)", names={"#pk": PK}))
        else:
            marker = {PK: keys.applied_pk(event.dedupe_key), SK: keys.APPLIED_SK}
            core.append(put(table, marker, "attribute_not_exists(#pk)", names={"#pk": PK}))
    for write in plan.profiles:
        core.append(profile_write(table, write.profile, write.expected_version))
        core.extend(annotation_writes(table, write.profile))
    for record in plan.identifiers:
        core.append(_identifier_write(table, plan.namespace, record))
    extra: list[dict[str, Any]] = []
    for entry in plan.lineage:
        body = _lineage_item(entry)
        for pid in entry.person_ids or (entry.survivor_id,):
            if pid:
                extra.append(put(table, {PK: keys.person_pk(pid), SK: body["sk"], **body["item"]}))
    for key in plan.newly_shared:
        owner = next((r.person_id for r in plan.identifiers if r.key == key), None)
        review = {
            PK: keys.review_pk(plan.namespace),
            SK: keys.review_sk(key),
            "identifier": key,
            "reason": next((r.shared for r in plan.identifiers if r.key == key), "hub"),
            "quarantined_at": iso(plan.lineage[-1].at) if plan.lineage else None,
            "event_id": event.event_id if event else None,
            "previous_owner": owner,
        }
        extra.append(put(table, {k: v for k, v in review.items() if v is not None}))
    return core, extra


def _write_key(write: dict[str, Any]) -> tuple[str, str]:
    body = write.get("Put", {}).get("Item") or next(iter(write.values()))["Key"]
    return body[PK]["S"], body[SK]["S"]


def _identifier_item(namespace: str, record: IdentifierRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        PK: keys.identifier_pk(namespace, record.key),
        SK: keys.IDENTIFIER_SK,
        "identifier": record.key,
        "ver": record.version + 1,
        "up": sorted(record.up),
        "disabled": sorted(record.disabled),
    }
    if record.person_id:
        item["person_id"] = record.person_id
    if record.shared:
        item["shared"] = record.shared
    return item


def _identifier_write(table: str, namespace: str, record: IdentifierRecord) -> dict[str, Any]:
    item = _identifier_item(namespace, record)
    if record.version == 0:
        return put(table, item, "attribute_not_exists(#pk)", names={"#pk": PK})
    return put(table, item, "ver = :expected", values={":expected": record.version})


def _filed_item(namespace: str, anchor: str, event: CanonicalEvent) -> dict[str, Any]:
    filed = {
        PK: keys.anchor_pk(namespace, anchor),
        SK: keys.timeline_sk(event.occurred_at, event.event_id),
        "event_type": event.event_type,
        "occurred_at": iso(event.occurred_at),
        "brand_id": event.brand_id,
        "store_id": event.store_id,
        "event": event.model_dump_json(),
    }
    return {k: v for k, v in filed.items() if v is not None}


def _to_record(item: dict[str, Any]) -> IdentifierRecord:
    return IdentifierRecord(
        key=item["identifier"],
        person_id=item.get("person_id"),
        up=frozenset(item.get("up") or ()),
        disabled=frozenset(item.get("disabled") or ()),
        shared=item.get("shared"),
        version=int(item.get("ver", 1)),
    )


def _lineage_item(entry: LineageRecord) -> dict[str, Any]:
    body = {
        "kind": entry.kind,
        "at": iso(entry.at),
        "person_ids": list(entry.person_ids),
        "rule": entry.rule,
        "identifiers": list(entry.identifiers),
        "event_id": entry.event_id,
        "actor": entry.actor,
        "survivor_id": entry.survivor_id,
        "merged_ids": list(entry.merged_ids),
        "parts": {k: list(v) for k, v in entry.parts.items()},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {"sk": keys.lineage_sk(entry.at, digest), "item": {k: v for k, v in body.items() if v is not None}}


def _to_lineage(item: dict[str, Any]) -> LineageRecord:
    return LineageRecord(
        kind=item["kind"],
        at=parse_iso(item["at"]),
        person_ids=tuple(item.get("person_ids") or ()),
        rule=item["rule"],
        identifiers=tuple(item.get("identifiers") or ()),
        event_id=item.get("event_id"),
        actor=item.get("actor"),
        survivor_id=item.get("survivor_id"),
        merged_ids=tuple(item.get("merged_ids") or ()),
        parts={k: tuple(v) for k, v in (item.get("parts") or {}).items()},
    )
