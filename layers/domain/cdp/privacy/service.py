"""Erase a person (suppress their identifiers first, then remove every item and derived record) and export a person.

Erasure order, and why:

1. Suppress the person's identifiers (hashes on the suppression list): from then on `resolve_event` drops them, so
   no new event can add to the person or recreate them.
2. Sweep: read what the person owns now (filed events, identifier records, the items under their person ids),
   scrub what points at it elsewhere (raw request bodies found through the dedupe ledger, campaign and export
   files, the outbox, send records, other persons' lineage, identifier records, review entries and events), remove
   their offers wallets and loyalty accounts (what their offers still reserved of a budget goes back to its pools),
   then delete it all except the profile items. Everything used to find the rest is deleted after the rest, so a
   retry after a failure finds it again.
3. Save the receipt (no personal data) under every erased id.
4. Delete the profile items, and sweep once more: a resolution planned before step 1 either committed before the
   profile items went (the second sweep removes what it wrote) or fails its version check and re-plans against
   the suppression list. Publish `person.erased`.

The bucket scan in step 2 reads every object under `campaigns/`, `exports/` and `outbox/` (an erasure is rare; the
outbox is the local and webhook channel): correct and simple, linear in those prefixes.

A repeated erasure of the same id, or of an id merged into the erased person, returns the stored receipt (after
re-deleting any profile item left by an interrupted run, and publishing `person.erased` again, since the first
call may have failed to publish). An id that never existed raises NotFoundError.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime

from cdp import topology
from cdp.campaigns.models import TOUCH1, TOUCH2
from cdp.channels.ports import SendKey
from cdp.errors import ConflictError, NotFoundError
from cdp.identity.resolution import IdentifierRecord
from cdp.ingest.events import CanonicalEvent
from cdp.observability import logger
from cdp.org import OrgDirectory, load_org
from cdp.privacy.models import OFFER_LISTS, ErasureReceipt, ObjectChange, PersonErased, PersonExport, Retained
from cdp.privacy.ports import DataArchive, FiledEvent, ItemKey, LedgerRecords, OfferRecords, PersonRecords, StoredItem
from cdp.privacy.raw import Mode, Needles, RawScrub, scrub_raw, scrub_rows
from cdp.privacy.scrub import mentions, scrub_json
from cdp.profile import keys
from cdp.profile.models import Profile
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now
from cdp.warehouse.erasure import erasure_request

MAX_MERGE_HOPS = 50
SCANNED_PREFIXES = (topology.CAMPAIGNS_PREFIX, topology.EXPORTS_PREFIX)  # JSON documents: rows are removed
# Rows that never became events (rejected import rows, pulled platform records not ingested) are not reachable
# through the dedupe ledger: these prefixes are scanned for the person's identifiers.
IMPORT_REJECTS_PREFIX = f"{topology.IMPORTS_PREFIX}rejects/"
IMPORT_REPORTS_PREFIX = f"{topology.IMPORTS_PREFIX}reports/"
ROW_PREFIXES = (IMPORT_REJECTS_PREFIX, IMPORT_REPORTS_PREFIX, topology.REJECTS_PREFIX)


def identifier_hash(identifier_key: str) -> str:
    """The form in which an erased identifier is kept (the hash of `cdp.profile.keys.suppressed_pk`)."""
    return hashlib.sha256(identifier_key.encode()).hexdigest()


# ---- who ------------------------------------------------------------------------------------------------------


def _survivor(records: PersonRecords, person_id: str) -> Profile:
    profile = records.person(person_id)
    for _hop in range(MAX_MERGE_HOPS):
        if profile is None or not profile.merged_into:
            break
        profile = records.person(profile.merged_into)
    if profile is None or profile.merged_into:
        raise NotFoundError(f"no person {person_id}")
    return profile


def _leads_to(records: PersonRecords, person_id: str, survivor_id: str) -> Profile | None:
    """The stored profile of a person merged (possibly through others) into the survivor; None otherwise."""
    first = profile = records.person(person_id)
    for _hop in range(MAX_MERGE_HOPS):
        if profile is None or not profile.merged_into:
            return None
        if profile.merged_into == survivor_id:
            return first
        profile = records.person(profile.merged_into)
    return None


def _merged_persons(records: PersonRecords, survivor: Profile) -> list[Profile]:
    """Persons merged into the survivor. One that an unmerge restored is its own person again and is left alone."""
    found = (_leads_to(records, pid, survivor.person_id) for pid in sorted(set(survivor.merged_from)))
    return [p for p in found if p is not None]


def _owned_keys(records: PersonRecords, namespace: str, survivor: Profile, merged: list[Profile]) -> set[str]:
    """The identifiers the person holds: the survivor's, and any of a merged person's still recorded as theirs.
    Shared (quarantined) identifiers belong to no one and are not the person's to erase."""
    ids = {survivor.person_id} | {p.person_id for p in merged}
    candidates = set(survivor.identifiers) | {k for p in merged for k in p.identifiers}
    found = records.identifier_records(namespace, candidates)
    owned = set()
    for key in candidates:
        record = found.get(key)
        if record is None:
            if key in survivor.identifiers:
                owned.add(key)
        elif not record.shared and record.person_id in ids:
            owned.add(key)
    return owned


# ---- erasure --------------------------------------------------------------------------------------------------


class _Erasure:
    """The state of one erasure: what the person holds, and what has been removed so far (for the receipt)."""

    def __init__(
        self,
        requested_id: str,
        survivor: Profile,
        namespace: str,
        ports: tuple[PersonRecords, DataArchive, LedgerRecords, OfferRecords],
        at: datetime,
    ) -> None:
        self.requested_id = requested_id
        self.survivor = survivor
        self.namespace = namespace
        self.records, self.archive, self.ledger, self.offers = ports
        self.at = at
        self.merged_ids: list[str] = []
        self.owned: set[str] = set()
        self.item_lists: dict[str, set[str]] = {
            name: set() for name in ("profile", "merged", "other", "messages", "lineage", "edits")
        }
        self.identifier_records: set[str] = set()
        self.events: set[str] = set()
        self.redacted: set[str] = set()
        self.raw: dict[str, ObjectChange] = {}
        self.imports: dict[str, ObjectChange] = {}
        self.raw_not_located: set[str] = set()  # objects that delivered the person's events, person not recognised
        self.events_without_raw: set[str] = set()  # the person's events whose dedupe record (raw key) is gone
        self.documents: dict[str, ObjectChange] = {}
        self.outbox: dict[str, ObjectChange] = {}
        self.sends: set[str] = set()
        self.offer_lists: dict[str, set[str]] = {name: set() for name in OFFER_LISTS}
        self.shared_touched: set[str] = set()
        self.event_days: set[tuple[str, date]] = set()  # (brand, UTC day) of the person's events: warehouse partitions
        self.warehouse_request: str | None = None
        self._requested_ids: set[str] = set()
        self._profile_keys: set[ItemKey] = set()
        self._refreshed = False

    @property
    def person_ids(self) -> list[str]:
        return [self.survivor.person_id, *self.merged_ids]

    @property
    def erased_strings(self) -> frozenset[str]:
        return frozenset(self.person_ids) | frozenset(self.owned)

    @property
    def needles(self) -> Needles:
        """The person in raw bodies that delivered their events: identifiers, and the name they gave."""
        name = self.survivor.traits.name
        return Needles.of(self.owned, [name] if name else [])

    @property
    def row_needles(self) -> Needles:
        """The person in scanned files: identifiers only (a name alone would take a namesake's rows)."""
        return Needles.of(self.owned)

    # -- the sweep -----------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Who and which identifiers the person is now; suppress any identifier not suppressed yet (before any
        deletion: from then on no event can add to the person or recreate them)."""
        profile = self.records.person(self.survivor.person_id)
        if profile is None or profile.merged_into:
            if not self._refreshed:
                raise ConflictError(f"person {self.survivor.person_id} changed during the erasure; retry")
            return  # deleted by this erasure already
        self._refreshed = True
        merged = _merged_persons(self.records, profile)
        self.merged_ids = sorted({*self.merged_ids, *(p.person_id for p in merged)})
        new = _owned_keys(self.records, self.namespace, profile, merged) - self.owned
        if new:
            self.records.suppress(self.namespace, new, self.at)
            self.owned |= new

    def sweep(self, scan_bucket: bool) -> bool:
        """Remove what the person holds now (profile items excepted); True when anything was found."""
        self._refresh()
        items = [item for pid in self.person_ids for item in self.records.items(pid)]
        events = self.records.filed_events(self.namespace, self.owned)
        records = self.records.identifier_records(self.namespace, self.owned)
        if scan_bucket:
            self._scrub_documents()
            self._scrub_outbox()
            self._scrub_rows()
        self._scrub_raw([f.event for f in events])
        self._delete_sends(items)
        inbox = self.ledger.delete_inbox(self.survivor.brand_id, self.person_ids)
        self.sends |= set(inbox)
        offers = self._erase_offers()
        self._redact_foreign(items, records)
        self.events |= {f.event.dedupe_key for f in events}
        self._request_warehouse_erasure({(f.event.brand_id, f.event.occurred_at.date()) for f in events})
        self.identifier_records |= {identifier_hash(k) for k in records}
        deletions = [f.key for f in events]
        deletions += [ItemKey(keys.identifier_pk(self.namespace, k), keys.IDENTIFIER_SK) for k in records]
        deletions += [self._file(item) for item in items if item.key.sk != keys.PROFILE_SK]
        self.records.delete(deletions)
        self._profile_keys |= {self._file(item) for item in items if item.key.sk == keys.PROFILE_SK}
        return bool(items or events or records or offers or inbox)

    def delete_profiles(self) -> None:
        """Last: a resolution planned before the suppression fails its version check once these are gone."""
        self.records.delete(sorted(self._profile_keys))

    def _file(self, item: StoredItem) -> ItemKey:
        """Record the item in its receipt list; return its key."""
        pid = item.key.pk.removeprefix(keys.person_pk(""))
        sk = item.key.sk
        if sk == keys.PROFILE_SK:
            self.item_lists["profile" if pid == self.survivor.person_id else "merged"].add(f"{pid}/{sk}")
        else:
            kind = {keys.MESSAGE_PREFIX: "messages", keys.LINEAGE_PREFIX: "lineage", keys.EDIT_PREFIX: "edits"}
            self.item_lists[kind.get(sk[:2], "other")].add(f"{pid}/{sk}")
        return item.key

    # -- S3 --------------------------------------------------------------------------------------------------

    def _request_warehouse_erasure(self, days: set[tuple[str, date]]) -> None:
        """The warehouse's event partitions are Parquet, rewritten by its export (`cdp.warehouse.erasure`): leave it
        the days of the person's events, before those events are deleted (a retry would not find them again)."""
        if days <= self.event_days and set(self.person_ids) <= self._requested_ids:
            return
        self.event_days |= days
        self._requested_ids = set(self.person_ids)
        request = erasure_request(
            self.survivor.person_id, self.person_ids, self.survivor.brand_id, self.at, self.event_days
        )
        self.archive.rewrite(request.key, request.model_dump_json().encode())
        self.warehouse_request = request.key

    def _scrub_raw(self, events: list[CanonicalEvent], mode: Mode = "own") -> None:
        """Raw request bodies that delivered the events (found through the ingest dedupe ledger), in any format:
        `own` events' items go, a `foreign` event (another person's too) keeps its item without the person."""
        dedupe = {e.dedupe_key for e in events}
        legacy = {e.legacy_dedupe_key: e.dedupe_key for e in events}  # records written before keys named the brand
        found = {legacy.get(k, k): raw for k, raw in self.ledger.raw_keys(dedupe | set(legacy)).items()}
        self.events_without_raw |= dedupe - set(found)
        by_object: dict[str, set[str]] = {}
        for dedupe_key, raw_key in found.items():
            by_object.setdefault(raw_key, set()).add(dedupe_key)
        for raw_key, wanted in sorted(by_object.items()):
            body = self.archive.read(raw_key)
            if body is None:
                continue  # deleted already (by this erasure, or an earlier run of it)
            if raw_key.startswith(topology.IMPORTS_PREFIX):
                self._apply(raw_key, scrub_rows(body, self.row_needles), self.imports)  # a dropped file stays
            else:
                self._apply(raw_key, scrub_raw(body, self.needles, mode, wanted if mode == "own" else ()), self.raw)

    def _apply(self, key: str, result: RawScrub, into: dict[str, ObjectChange]) -> None:
        """Carry out one object's scrub and file it in the receipt (rows_removed: items removed + fields redacted)."""
        earlier = into.get(key)
        if result.body is None:
            self.archive.delete(key)
            into[key] = ObjectChange(key=key, action="deleted")
        elif result.changed:
            self.archive.rewrite(key, result.body)
            total = result.removed + result.redacted + (earlier.rows_removed if earlier else 0)
            into[key] = ObjectChange(key=key, action="rewritten", rows_removed=total)
        elif earlier is None and not result.located:
            self.raw_not_located.add(key)

    def _scrub_rows(self) -> None:
        """Import rejects and reports and pulled records not ingested: the person's rows go. An import whose rejects
        named the person also has its dropped file scrubbed (their rejected rows are in it, not in the ledger)."""
        needles = self.row_needles
        if needles.pattern is None:
            return
        imports: set[str] = set()
        for prefix in ROW_PREFIXES:
            for key in list(self.archive.keys(prefix)):
                body = self.archive.read(key)
                if body is None:
                    continue
                result = scrub_rows(body, needles)
                if not result.changed:
                    continue
                self._apply(key, result, self.imports if key.startswith(topology.IMPORTS_PREFIX) else self.raw)
                rest = key.removeprefix(IMPORT_REJECTS_PREFIX).removeprefix(IMPORT_REPORTS_PREFIX)
                if rest != key:
                    imports.add(rest.split("/", 1)[0].removesuffix(".json"))
        for import_id in sorted(imports):
            report = self.archive.read(f"{IMPORT_REPORTS_PREFIX}{import_id}.json")
            dropped = _dropped_file(report)
            body = self.archive.read(dropped) if dropped else None
            if dropped and body is not None:
                self._apply(dropped, scrub_rows(body, needles), self.imports)

    def _scrub_documents(self) -> None:
        """Campaign artifacts (audiences, batches) and exports: remove the person's rows, or the whole document."""
        ids = frozenset(self.person_ids)
        for prefix in SCANNED_PREFIXES:
            for key in list(self.archive.keys(prefix)):
                body = self.archive.read(key)
                if body is None or not mentions(body, ids):
                    continue
                clean, removed = scrub_json(body, ids)
                if clean is None:
                    self.archive.delete(key)
                    self.documents[key] = ObjectChange(key=key, action="deleted")
                else:
                    self.archive.rewrite(key, clean)
                    self.documents[key] = ObjectChange(key=key, action="rewritten", rows_removed=removed)

    def _scrub_outbox(self) -> None:
        """Each outbox object is one message to one person (address and rendered text): delete it whole."""
        ids = frozenset(self.person_ids)
        for key in list(self.archive.keys(topology.OUTBOX_PREFIX)):
            body = self.archive.read(key)
            if body is not None and mentions(body, ids):
                self.archive.delete(key)
                self.outbox[key] = ObjectChange(key=key, action="deleted")

    # -- ledger ----------------------------------------------------------------------------------------------

    def _delete_sends(self, items: list[StoredItem]) -> None:
        """Send idempotency records, keyed by (campaign, step, person): found through the person's messages (both
        steps of each campaign, in case a send was claimed but its message record not written)."""
        messages = [i.data for i in items if i.key.sk.startswith(keys.MESSAGE_PREFIX)]
        steps = {(str(m["campaign_id"]), str(m["step"])) for m in messages}
        steps |= {(str(m["campaign_id"]), step) for m in messages for step in (TOUCH1, TOUCH2)}
        wanted = [SendKey(c, s, pid) for c, s in sorted(steps) for pid in self.person_ids]
        if wanted:
            self.sends |= set(self.ledger.delete_sends(wanted))

    # -- offers table -----------------------------------------------------------------------------------------

    def _erase_offers(self) -> bool:
        """The wallets and loyalty accounts of every erased id; True when anything was found."""
        wallet = self.offers.erase_wallets(self.survivor.brand_id, self.person_ids, self.at)
        loyalty = self.offers.erase_loyalty(self.survivor.brand_id, self.person_ids)
        found = {
            "wallet_entries": wallet.entries,
            "wallet_records": wallet.records,
            "budget_holds_released": wallet.holds_released,
            "budget_holds": wallet.holds,
            "loyalty_accounts": loyalty.accounts,
            "loyalty_operations": loyalty.operations,
            "loyalty_timers": loyalty.timers,
        }
        for name, labels in found.items():
            self.offer_lists[name] |= set(labels)
        return any(found.values())

    # -- other persons' records --------------------------------------------------------------------------------

    def _redact_foreign(self, items: list[StoredItem], records: Mapping[str, IdentifierRecord]) -> None:
        """Lineage copies filed under other persons, identifier records linked to the person's identifiers (hubs,
        identifiers unbound from them), review entries of those hubs, and events filed under those identifiers."""
        foreign: set[str] = set()
        for record in records.values():
            foreign |= set(record.up) | set(record.disabled)
        for item in items:
            if not item.key.sk.startswith(keys.LINEAGE_PREFIX):
                continue
            data = item.data
            parts: dict[str, list[str]] = data.get("parts") or {}
            named = {*data.get("person_ids", []), *data.get("merged_ids", []), *parts, data.get("survivor_id")}
            for pid in sorted({str(p) for p in named if p} - set(self.person_ids)):
                self._redact(ItemKey(keys.person_pk(pid), item.key.sk), f"lineage:{pid}/{item.key.sk}")
            foreign |= {str(k) for k in data.get("identifiers", [])} | {str(k) for p in parts.values() for k in p}
        self._redact_identifiers(foreign - self.owned)

    def _redact_identifiers(self, foreign: set[str]) -> None:
        if not foreign:
            return
        found = self.records.identifier_records(self.namespace, foreign)
        for key, record in sorted(found.items()):
            label = identifier_hash(key)
            if (set(record.up) | set(record.disabled)) & self.owned:
                id_key = ItemKey(keys.identifier_pk(self.namespace, key), keys.IDENTIFIER_SK)
                self._redact(id_key, f"identifier:{label}", versioned=True)
            if record.shared:
                self.shared_touched.add(key)
                self._redact(ItemKey(keys.review_pk(self.namespace), keys.review_sk(key)), f"review:{label}")
        for filed in self.records.filed_events(self.namespace, sorted(foreign)):
            anchor = found.get(filed.anchor)
            self._redact_event(filed, nobodys=anchor is None or anchor.shared is not None)

    def _redact(self, key: ItemKey, label: str, versioned: bool = False) -> None:
        if self.records.redact(key, self.erased_strings, versioned=versioned):
            self.redacted.add(label)

    def _redact_event(self, filed: FiledEvent, nobodys: bool) -> None:
        """An event under a foreign identifier that also carried one of the person's identifiers: under a shared
        identifier it is attributed to no one else, so it goes; under another person's it is theirs too, so it
        stays without the person's identifiers."""
        if not any(i.key in self.owned for i in filed.event.identifiers):
            return
        if nobodys:
            self.records.delete([filed.key])
            self.events.add(filed.event.dedupe_key)
            self._scrub_raw([filed.event])
            return
        rest = [i for i in filed.event.identifiers if i.key not in self.owned]
        redacted = filed.event.model_copy(update={"identifiers": rest})
        self.records.replace_event(FiledEvent(filed.key, filed.anchor, redacted))
        self.redacted.add(f"event:{filed.event.dedupe_key}")
        self._scrub_raw([filed.event], mode="foreign")  # the raw item stays, without the person's fields

    # -- the receipt -------------------------------------------------------------------------------------------

    def receipt(self, actor: str, at: datetime) -> ErasureReceipt:
        lists = {name: sorted(values) for name, values in self.item_lists.items()}
        offers = {name: sorted(values) for name, values in self.offer_lists.items()}
        return ErasureReceipt(
            person_id=self.survivor.person_id,
            requested_id=self.requested_id,
            brand_id=self.survivor.brand_id,
            namespace=self.namespace,
            erased_at=at,
            actor=actor,
            merged_person_ids=self.merged_ids,
            identifiers_suppressed=sorted(identifier_hash(k) for k in self.owned),
            profile_items=lists["profile"],
            merged_person_items=lists["merged"],
            other_person_items=lists["other"],
            identifier_records=sorted(self.identifier_records),
            filed_events=sorted(self.events),
            messages=lists["messages"],
            lineage=lists["lineage"],
            edits=lists["edits"],
            redacted_items=sorted(self.redacted),
            raw_archive_objects=[self.raw[k] for k in sorted(self.raw)],
            campaign_objects=[c for k, c in sorted(self.documents.items()) if k.startswith(topology.CAMPAIGNS_PREFIX)],
            export_objects=[c for k, c in sorted(self.documents.items()) if k.startswith(topology.EXPORTS_PREFIX)],
            outbox_objects=[self.outbox[k] for k in sorted(self.outbox)],
            warehouse_request=self.warehouse_request,
            import_objects=[self.imports[k] for k in sorted(self.imports)],
            raw_objects_not_located=sorted(self.raw_not_located - set(self.raw) - set(self.imports)),
            ledger_records=sorted(self.sends),
            wallet_entries=offers["wallet_entries"],
            wallet_records=offers["wallet_records"],
            budget_holds_released=offers["budget_holds_released"],
            budget_holds=offers["budget_holds"],
            loyalty_accounts=offers["loyalty_accounts"],
            loyalty_operations=offers["loyalty_operations"],
            loyalty_timers=offers["loyalty_timers"],
            retained=self._retained(),
        )

    def _retained(self) -> list[Retained]:
        raw_days, imports_days = topology.RAW_RETENTION_DAYS, topology.IMPORTS_RETENTION_DAYS
        out = [
            Retained(
                what="applied-event markers (APPLIED#{brand_id}#{source}#{event_id}) of events applied before the "
                "filed event became its own marker",
                reason="hold no personal data; they make a redelivered copy of an erased event count as applied "
                "(a copy of a later event carries an erased identifier and is suppressed)",
            ),
            Retained(
                what="ingest dedupe records (EVT#{brand_id}#{source}#{event_id} in the ledger table)",
                count=len(self.events),
                reason="hold only the event id, the raw archive key and the receive time; a re-sent copy is dropped "
                f"as a duplicate; they expire after {raw_days} days",
            ),
            Retained(
                what="suppression items (SUP#{namespace}#{sha256})",
                count=len(self.owned),
                reason="hold only hashes of the identifiers; they keep re-ingest from recreating the person",
            ),
            Retained(
                what="this receipt (ERASURE#{person_id})",
                reason="holds ids, hashes and keys only; it answers a repeated erasure request",
            ),
            Retained(
                what="model artifacts (models/)",
                reason="fitted estimators and aggregate metrics, no per-person rows; the next training run no longer "
                "sees the person",
            ),
            Retained(
                what="offers' issue counts and budget pools (OFFER#{brand_id}, BUDGET#{brand_id} in the offers table)",
                reason="aggregates over every member, no per-person rows: the stock the person's offers took stays "
                "taken and the money they spent stays committed; what was still reserved for them went back to the "
                "pools (budget_holds_released)",
            ),
            Retained(
                what="earlier versions of the rewritten and deleted objects (the bucket is versioned)",
                reason="the erasure deletes them; any it could not (an object written again meanwhile) expires "
                f"{topology.NONCURRENT_VERSION_DAYS} days after it stopped being current",
            ),
            Retained(
                what="raw bodies the dedupe ledger does not point to (raw/)",
                reason="rejected events and duplicate or retried deliveries of the person's events cannot be "
                f"attributed without reading the whole archive; raw/ objects expire {raw_days} days after they "
                f"were received, import files (imports/) after {imports_days} days and pulled platform records "
                f"that were not ingested (rejects/) after {topology.REJECTS_RETENTION_DAYS} days",
            ),
            Retained(
                what="events filed under another person's or a shared identifier with no recorded link to the person",
                reason="they cannot be located without a full table scan (linked ones were removed or redacted)",
            ),
            Retained(
                what="the warehouse's profile and tag snapshots and event partitions (warehouse/)",
                count=len(self.event_days),
                reason="Parquet files, rewritten by the warehouse export: its next run (nightly) writes snapshots "
                "without the person and rewrites the days of their events (count) without their rows "
                "(warehouse_request); old versions of those files expire a day later",
            ),
            Retained(
                what="logs, Step Functions history, queued bus events, provider delivery logs",
                reason="not rewritable: structured logs and execution history name person ids and expire with their "
                "retention; queues hold events for at most 14 days; providers and downstream systems are told by "
                "the person.erased event",
            ),
        ]
        anonymised = [h for h in self.offer_lists["budget_holds"] if h.startswith("anonymised:")]
        if anonymised:
            out.append(
                Retained(
                    what="budget holds on which the person's offers spent money, re-keyed as "
                    "HOLD#{brand_id}#{offer_id}:erased:{random id} (budget_holds: 'anonymised:')",
                    count=len(anonymised),
                    reason="they hold the pools drawn on, the amounts and the times only: a pool's committed money is "
                    "the sum of its spent holds, so they stay for the budgets to balance; their new ids are random "
                    "and no longer name the person (nor does a plan id that did)",
                )
            )
        if self.events_without_raw:
            out.append(
                Retained(
                    what="raw bodies of the person's events whose dedupe record has expired",
                    count=len(self.events_without_raw),
                    reason=f"they could not be located; raw/ objects expire {raw_days} days after they were received, "
                    "as the dedupe records do",
                )
            )
        not_located = self.raw_not_located - set(self.raw) - set(self.imports)
        if not_located:
            out.append(
                Retained(
                    what="raw objects that delivered the person's events but in which the person was not recognised "
                    "(raw_objects_not_located)",
                    count=len(not_located),
                    reason=f"kept as delivered; they expire {raw_days} days after they were received "
                    f"({imports_days} for import files)",
                )
            )
        if self.shared_touched:
            out.append(
                Retained(
                    what="shared (quarantined) identifiers the person used",
                    count=len(self.shared_touched),
                    reason="they belong to no single person (store tablets, family devices) and are not suppressed, "
                    "so others keep using them; their links to the person's identifiers were removed",
                )
            )
        return out


def _dropped_file(report: bytes | None) -> str | None:
    """The dropped file an import report names (`cdp.imports.models.ImportReport.key`)."""
    if report is None:
        return None
    try:
        key = json.loads(report).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) and key.startswith(topology.IMPORTS_PREFIX) else None


def erase_person(
    person_id: str,
    actor: str,
    records: PersonRecords,
    archive: DataArchive,
    ledger: LedgerRecords,
    offers: OfferRecords,
    publisher: EventPublisher,
    org: OrgDirectory | None = None,
    now: datetime | None = None,
) -> ErasureReceipt:
    """Erase the person (or the person an id was merged into) and return the receipt; see the module docstring.

    Raises NotFoundError for an unknown id; StoreError (retryable) when a store fails midway: a retry finishes the job.
    """
    at = now or utc_now()
    stored = records.receipt(person_id)
    if stored is not None:
        leftovers = [i.key for pid in [stored.person_id, *stored.merged_person_ids] for i in records.items(pid)]
        records.delete(leftovers)  # an earlier run stopped between saving the receipt and deleting the profiles
        _announce(stored, publisher)
        return stored
    survivor = _survivor(records, person_id)
    namespace = (org or load_org()).brand(survivor.brand_id).namespace
    erasure = _Erasure(person_id, survivor, namespace, (records, archive, ledger, offers), at)
    erasure.sweep(scan_bucket=True)  # suppresses the identifiers before it deletes anything
    receipt = erasure.receipt(actor, at)
    records.save_receipt(receipt, {person_id, *erasure.person_ids})
    erasure.delete_profiles()
    if erasure.sweep(scan_bucket=False):  # a resolution committed while the first sweep ran
        erasure.delete_profiles()
        receipt = erasure.receipt(actor, at)
        records.save_receipt(receipt, {person_id, *erasure.person_ids})
    logger.info("person erased", person_id=receipt.person_id, actor=actor, counts=receipt.counts)
    _announce(receipt, publisher)
    return receipt


def _announce(receipt: ErasureReceipt, publisher: EventPublisher) -> None:
    event = PersonErased(
        person_id=receipt.person_id,
        merged_person_ids=receipt.merged_person_ids,
        brand_id=receipt.brand_id,
        erased_at=receipt.erased_at,
    )
    publisher.publish([event], correlation_id=f"erasure:{receipt.person_id}")


# ---- export ---------------------------------------------------------------------------------------------------


def export_person(
    person_id: str,
    records: PersonRecords,
    org: OrgDirectory | None = None,
    now: datetime | None = None,
    offers: OfferRecords | None = None,
) -> PersonExport:
    """Everything held on the person (an id merged into another exports the survivor). NotFoundError when unknown
    or erased."""
    survivor = _survivor(records, person_id)
    namespace = (org or load_org()).brand(survivor.brand_id).namespace
    merged = _merged_persons(records, survivor)
    ids = [survivor.person_id, *sorted(p.person_id for p in merged)]
    events = {f.event.dedupe_key: f.event for f in records.filed_events(namespace, survivor.identifiers)}
    lineage = {(r.at, r.kind, r.rule, r.identifiers, r.person_ids): r for pid in ids for r in records.lineage(pid)}
    edits = [dict(i.data) for pid in ids for i in records.items(pid) if i.key.sk.startswith(keys.EDIT_PREFIX)]
    return PersonExport(
        person_id=survivor.person_id,
        exported_at=now or utc_now(),
        profile=survivor,
        identifiers=list(survivor.identifiers),
        merged_person_ids=ids[1:],
        events=sorted(events.values(), key=lambda e: (e.occurred_at, e.event_id)),
        messages=sorted((m for pid in ids for m in records.messages(pid)), key=lambda m: (m.sent_at, m.message_id)),
        lineage=sorted(lineage.values(), key=lambda r: r.at),
        edits=sorted(edits, key=lambda e: str(e.get("at", ""))),
        tags=dict(survivor.tags),
        scores=dict(survivor.scores),
        wallet=offers.wallet(survivor.brand_id, ids) if offers is not None else [],
        loyalty_accounts=offers.loyalty_accounts(survivor.brand_id, ids) if offers is not None else [],
    )
