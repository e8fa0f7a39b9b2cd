"""The 360-degree profile API: read, browse and edit customers, and run identity operations, per API key.

Every call names its client (`ApiClient`): the key must hold the route's permission scope (403 otherwise), and the
key's place in the org hierarchy limits what it sees (`cdp.app.profile_views`). Every change (edit, merge, unmerge,
unbind, quarantine, erase) records the client's name as its actor. Edits are canonical events with source `cdp`
resolved synchronously like any other event, plus an audit record under the person (`cdp.profile.edits`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdp.app.profile_views import (
    LineageView,
    PersonSummary,
    ProfileView,
    TimelineView,
    covers_brand,
    covers_whole_brand,
    decode_cursor,
    event_in_scope,
    facts_in_scope,
    narrow,
    parse_scope,
    person_summary,
    profile_view,
    scoped_page,
    timeline_view,
    visible_scopes,
    with_lifecycle,
)
from cdp.channels.ports import MessageLog
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError
from cdp.identifiers.model import Identifier, IdentifierType
from cdp.identity.ports import IdentityStore
from cdp.identity.resolution import IdentifierRecord, LineageRecord
from cdp.identity.service import IdentityOperations, OperationResult, resolve_event
from cdp.ingest.auth import EDIT_PROFILES_SCOPE, ERASE_SCOPE, MERGE_SCOPE, READ_PROFILES_SCOPE, authorize
from cdp.ingest.events import MessageChannel, parse_event
from cdp.ingest.ports import ApiClient
from cdp.offers.wallet import OfferStore
from cdp.org import BrandConfig, OrgDirectory, ScopeRef
from cdp.privacy.models import ErasureReceipt, PersonExport
from cdp.privacy.ports import DataArchive, LedgerRecords, OfferRecords, PersonRecords
from cdp.privacy.service import erase_person, export_person
from cdp.profile.edits import EditLog, EditRecord
from cdp.profile.models import Profile
from cdp.profile.ports import MessageRecord, TimelineEntry, TimelinePage
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now

DEFAULT_PAGE = 50
MAX_PAGE = 200

# ---- request bodies ---------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraitEdit(_Body):
    """The traits a caller may set (member levels come from loyalty programs, not from edits)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    gender: Literal["female", "male", "other", "unknown"] | None = None
    birthday: date | None = None
    city: str | None = Field(default=None, min_length=1, max_length=100)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    timezone: str | None = Field(default=None, min_length=1, max_length=64)


class ProfileEditRequest(_Body):
    """`PATCH /v1/profiles/{person_id}`: set traits and/or marketing consent per channel."""

    traits: TraitEdit = Field(default_factory=TraitEdit)
    consent: dict[MessageChannel | Literal["all"], bool] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _changes_something(self) -> ProfileEditRequest:
        if not self.traits.model_dump(exclude_none=True) and not self.consent:
            raise ValueError("an edit sets at least one trait or one consent channel")
        return self


class MergeRequest(_Body):
    person_ids: list[str] = Field(min_length=2, max_length=20)
    reason: str = Field(min_length=1, max_length=500)
    dry_run: bool = Field(default=False, description="preview the merged person without writing anything")


class UnmergeRequest(_Body):
    merged_person_id: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=500)
    dry_run: bool = Field(default=False, description="preview the persons the split leaves without writing anything")


class IdentifierInput(_Body):
    type: str
    value: str = Field(min_length=1, max_length=256)
    scope: str | None = Field(default=None, max_length=64, description="the WeChat app or platform, when scoped")


class QuarantineRequest(_Body):
    brand_id: str = Field(min_length=1, max_length=128)
    identifier: IdentifierInput
    reason: str = Field(min_length=1, max_length=500)


# ---- response bodies --------------------------------------------------------------------------------------------


class EditResponse(BaseModel):
    edit: EditRecord
    profile: ProfileView
    superseded: list[str] = Field(
        default_factory=list,
        description="edited traits the brand's merge policy still resolves to another source's value (a "
        "source_priority rule that does not list `cdp`); the edit is kept in trait_values and the audit",
    )


class IdentityOperationResponse(BaseModel):
    operation: Literal["merge", "unmerge", "unbind", "quarantine"]
    actor: str
    dry_run: bool
    committed: bool
    persons: list[PersonSummary] = Field(description="every person the operation leaves (merged result, split parts)")
    merged_ids: list[str] = Field(description="ids merged away into a survivor by this operation")
    lineage: list[LineageView] = Field(description="the history entries the operation records")


class ReviewItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    identifier: str
    reason: str
    quarantined_at: str | None = None
    event_id: str | None = None
    previous_owner: str | None = None


class ReviewQueue(BaseModel):
    brand_id: str
    namespace: str
    items: list[ReviewItem]


# ---- what the API reads -----------------------------------------------------------------------------------------


class ProfileQueries(Protocol):
    """The profile store's read side the API needs (`cdp.profile.dynamodb.DynamoProfileStore` implements it)."""

    def get(self, person_id: str) -> Profile | None: ...

    def lookup_identifiers(self, namespace: str, keys_: Iterable[str]) -> dict[str, IdentifierRecord]: ...

    def timeline(self, profile: Profile) -> list[TimelineEntry]: ...

    def timeline_page(self, profile: Profile, before: str | None, limit: int) -> TimelinePage: ...

    def messages(self, person_id: str) -> list[MessageRecord]: ...

    def lineage(self, person_id: str) -> list[LineageRecord]: ...

    def review_queue(self, namespace: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class PrivacyStores:
    """What erasure and export touch (`cdp.privacy`): the profiles table, the data bucket, the ledger table, the
    offers table (wallets and loyalty accounts)."""

    records: PersonRecords
    archive: DataArchive
    ledger: LedgerRecords
    offers: OfferRecords


Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body], body: str | bytes | None) -> Body:
    """A JSON request body as `model`; a 400 naming the first failing field otherwise."""
    if not body:
        raise InvalidInputError("a JSON body is required", "body")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors)
        raise InvalidInputError(message, where) from exc


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_PAGE
    try:
        limit = int(text)
    except ValueError as exc:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_PAGE}", "limit") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_PAGE}", "limit")
    return limit


def identifier_key(
    kind: str,
    value: str,
    scope: str | None,
    phone_region: str,
    fields: tuple[str, str, str] = ("type", "value", "scope"),
) -> str:
    """The normalized identifier key (E.164 phone in the brand's region, normalized e-mail, ...); a 400 naming the
    field (`fields`: the caller's names for type, value and scope) when the type is unknown or the value malformed."""
    type_field, value_field, scope_field = fields
    try:
        IdentifierType(kind)
    except ValueError as exc:
        known = ", ".join(t.value for t in IdentifierType)
        raise InvalidInputError(f"unknown identifier type {kind!r}; known types: {known}", type_field) from exc
    try:
        ident = Identifier.model_validate(
            {"type": kind, "value": value, "scope": scope or None}, context={"phone_region": phone_region}
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = err["loc"][0] if err["loc"] else "scope"
        field = {"type": type_field, "value": value_field}.get(str(loc), scope_field)
        raise InvalidInputError(f"{field}: {err['msg']}", field) from exc
    return ident.key


# ---- the service ------------------------------------------------------------------------------------------------


class ProfileApi:
    """One method per route; each checks the permission scope, then the hierarchy scope, then does the work."""

    def __init__(
        self,
        reader: ProfileQueries,
        identity: IdentityStore,
        edits: EditLog,
        publisher: EventPublisher,
        org: OrgDirectory,
        privacy: PrivacyStores,
        default_phone_region: str = "CN",
        now: Callable[[], datetime] = utc_now,
        wallets: OfferStore | None = None,
        message_log: MessageLog | None = None,
    ) -> None:
        self._wallets = wallets
        self._message_log = message_log
        self._privacy = privacy
        self._reader = reader
        self._identity = identity
        self._edits = edits
        self._publisher = publisher
        self._org = org
        self._default_region = default_phone_region
        self._now = now
        self._ops = IdentityOperations(identity, publisher, org, now)

    # ---- helpers ------------------------------------------------------------------------------------------------

    def phone_region(self, brand_id: str) -> str:
        """The brand's phone region; brands outside the directory use the deployment default (as ingest does)."""
        brand = self._org.brands.get(brand_id)
        return brand.phone_region if brand else self._default_region

    def _view_scope(self, client: ApiClient, scope: str | None) -> ScopeRef:
        return narrow(client.org_scope, parse_scope(scope))

    def _visible(self, person_id: str, scope: ScopeRef) -> Profile:
        """The surviving person, if anything of them lies in the scope; otherwise exactly an unknown person's 404."""
        profile = self._reader.get(person_id)
        if profile is None or profile.dissolved or facts_in_scope(profile, self._org, scope) is None:
            raise NotFoundError(f"no person {person_id}")
        return profile

    def _brand_of(self, profile: Profile, scope: ScopeRef) -> BrandConfig:
        """Whose loyalty and merge policies a view applies: the scope's brand, else the person's own."""
        return self._org.brand(scope.brand_id or profile.brand_id)

    def _view(self, profile: Profile, scope: ScopeRef, requested_id: str) -> ProfileView:
        people = [profile.person_id, *profile.merged_from]
        view = profile_view(
            profile,
            self._org,
            self._brand_of(profile, scope),
            scope,
            requested_id=requested_id,
            timeline=(e.event for e in self._reader.timeline(profile)),
            messages=[m for pid in people for m in self._reader.messages(pid)],
            lineage=[r for pid in people for r in self._reader.lineage(pid)],
            edits=self._edits.edits(people),
        )
        if view is None:  # pragma: no cover - _visible checked the scope
            raise NotFoundError(f"no person {requested_id}")
        if self._wallets is not None:
            entries = [e for pid in people for e in self._wallets.wallet(profile.brand_id, pid)]
            view = view.model_copy(update={"wallet": sorted(entries, key=lambda e: e.issued_at, reverse=True)})
        if self._message_log is not None and view.messages:  # each listed message as its receipts left it
            logged = self._message_log.get_many([m.message_id for m in view.messages])
            view = view.model_copy(
                update={"messages": [with_lifecycle(m, logged.get(m.message_id)) for m in view.messages]}
            )
        return view

    def _summaries(self, result: OperationResult, scope: ScopeRef) -> list[PersonSummary]:
        out = []
        for person in result.persons:
            summary = person_summary(person, self._org, self._brand_of(person, scope), scope)
            if summary is not None:
                out.append(summary)
        return out

    def _operation(
        self, name: Literal["merge", "unmerge", "unbind", "quarantine"], client: ApiClient, result: OperationResult
    ) -> IdentityOperationResponse:
        return IdentityOperationResponse(
            operation=name,
            actor=client.name,
            dry_run=not result.committed,
            committed=result.committed,
            persons=self._summaries(result, client.org_scope),
            merged_ids=sorted(p.person_id for p in result.plan.merged),
            lineage=[LineageView.of(r) for r in result.plan.lineage],
        )

    def _require_brand(self, client: ApiClient, brand_id: str | None, *, whole: bool = False) -> str:
        brand = brand_id or client.org_scope.brand_id
        if not brand:
            raise InvalidInputError("brand_id is required (the brand whose identity namespace to use)", "brand_id")
        covered = covers_whole_brand if whole else covers_brand
        if not covered(client.org_scope, self._org, brand):
            what = "the whole brand" if whole else "brand"
            raise ForbiddenError(f"{what} {brand} is outside this key's scope {client.org_scope.label}")
        return brand

    # ---- reads --------------------------------------------------------------------------------------------------

    def profile(self, client: ApiClient, person_id: str, scope: str | None = None) -> ProfileView:
        authorize(client, READ_PROFILES_SCOPE)
        view_scope = self._view_scope(client, scope)
        return self._view(self._visible(person_id, view_scope), view_scope, person_id)

    def by_identifier(
        self,
        client: ApiClient,
        kind: str,
        value: str,
        *,
        brand_id: str | None,
        identifier_scope: str | None = None,
        scope: str | None = None,
    ) -> ProfileView:
        authorize(client, READ_PROFILES_SCOPE)
        view_scope = self._view_scope(client, scope)
        brand = self._require_brand(client, brand_id)
        key = identifier_key(
            kind, value, identifier_scope, self.phone_region(brand), ("type", "value", "identifier_scope")
        )
        record = self._reader.lookup_identifiers(self._org.brand(brand).namespace, [key]).get(key)
        if record is None or record.person_id is None:
            raise NotFoundError(f"no person holds {key} in brand {brand}")
        profile = self._reader.get(record.person_id)
        if profile is None or profile.dissolved or facts_in_scope(profile, self._org, view_scope) is None:
            raise NotFoundError(f"no person holds {key} in brand {brand}")
        return self._view(profile, view_scope, profile.person_id)

    def timeline(
        self,
        client: ApiClient,
        person_id: str,
        *,
        cursor: str | None = None,
        limit: str | None = None,
        scope: str | None = None,
    ) -> TimelineView:
        authorize(client, READ_PROFILES_SCOPE)
        view_scope = self._view_scope(client, scope)
        size, before = parse_limit(limit), decode_cursor(cursor)
        profile = self._visible(person_id, view_scope)
        entries, next_key = scoped_page(
            lambda b, n: self._reader.timeline_page(profile, b, n),
            lambda e: event_in_scope(e, self._org, view_scope),
            before,
            size,
        )
        return timeline_view(profile, person_id, view_scope, entries, next_key)

    def review(self, client: ApiClient, brand_id: str | None) -> ReviewQueue:
        authorize(client, MERGE_SCOPE)
        brand = self._require_brand(client, brand_id, whole=True)
        namespace = self._org.brand(brand).namespace
        items = [ReviewItem.model_validate(item) for item in self._reader.review_queue(namespace)]
        return ReviewQueue(brand_id=brand, namespace=namespace, items=items)

    # ---- edits --------------------------------------------------------------------------------------------------

    def edit(
        self, client: ApiClient, person_id: str, request: ProfileEditRequest, scope: str | None = None
    ) -> EditResponse:
        """Traits and consent become `identify` / `consent_changed` events (source `cdp`) resolved now; the edit is
        filed under the person with its actor, and the returned profile already shows it."""
        authorize(client, EDIT_PROFILES_SCOPE)
        view_scope = self._view_scope(client, scope)
        profile = self._visible(person_id, view_scope)
        brand = self._brand_of(profile, view_scope)
        anchor = brand.rules.anchor(profile.identifiers)
        if anchor is None:
            raise InvalidInputError(f"{profile.person_id} has no usable identifier to file an edit under", "person_id")
        at, edit_id = self._now(), uuid.uuid4().hex
        traits = request.traits.model_dump(mode="json", exclude_none=True)
        common = {
            "source": "cdp",
            "brand_id": brand.brand_id,
            "store_id": view_scope.store_id,
            "occurred_at": at.isoformat(),
            "identifiers": [Identifier.from_key(anchor).model_dump(mode="json", exclude_none=True)],
            "context": {"actor": client.name, "edit_id": edit_id},
        }
        raw: list[dict[str, Any]] = []
        if traits:
            raw.append({"event_id": f"edit-{edit_id}-traits", "event_type": "identify", "properties": traits})
        for channel, granted in sorted(request.consent.items()):
            props = {"channel": channel, "granted": granted, "purpose": "marketing"}
            event_id = f"edit-{edit_id}-consent-{channel}"
            raw.append({"event_id": event_id, "event_type": "consent_changed", "properties": props})
        survivor = profile.person_id
        for body in raw:
            event = parse_event({**common, **body}, phone_region=brand.phone_region)
            outcome = resolve_event(event, self._identity, self._publisher, self._org, self._now)
            survivor = outcome.person_id or survivor
        record = EditRecord(
            edit_id=edit_id,
            person_id=survivor,
            actor=client.name,
            at=at,
            reason=request.reason,
            scope=view_scope.label,
            traits={k: str(v) for k, v in traits.items()},
            consent={str(k): v for k, v in request.consent.items()},
            event_ids=[b["event_id"] for b in raw],
        )
        self._edits.record(record)
        updated = self._visible(survivor, view_scope)
        resolved = updated.traits.model_dump(mode="json")
        superseded = sorted(k for k, v in record.traits.items() if str(resolved.get(k)) != v)
        view = self._view(updated, view_scope, person_id)
        return EditResponse(edit=record, profile=view, superseded=superseded)

    # ---- identity operations ------------------------------------------------------------------------------------

    def merge(self, client: ApiClient, request: MergeRequest) -> IdentityOperationResponse:
        authorize(client, MERGE_SCOPE)
        for pid in request.person_ids:
            self._visible(pid, client.org_scope)
        result = self._ops.merge(request.person_ids, client.name, request.reason, dry_run=request.dry_run)
        return self._operation("merge", client, result)

    def unmerge(self, client: ApiClient, person_id: str, request: UnmergeRequest) -> IdentityOperationResponse:
        authorize(client, MERGE_SCOPE)
        person = self._visible(person_id, client.org_scope)
        result = self._ops.unmerge(
            person.person_id, request.merged_person_id, client.name, request.reason, dry_run=request.dry_run
        )
        return self._operation("unmerge", client, result)

    def unbind(
        self,
        client: ApiClient,
        person_id: str,
        kind: str,
        value: str,
        *,
        reason: str | None,
        identifier_scope: str | None = None,
    ) -> IdentityOperationResponse:
        authorize(client, MERGE_SCOPE)
        if not reason or not reason.strip():
            raise InvalidInputError("reason is required (why the identifier is unbound)", "reason")
        person = self._visible(person_id, client.org_scope)
        region = self.phone_region(self._brand_of(person, client.org_scope).brand_id)
        key = identifier_key(kind, value, identifier_scope, region, ("type", "value", "identifier_scope"))
        result = self._ops.unbind(person.person_id, key, client.name, reason.strip())
        return self._operation("unbind", client, result)

    def quarantine(self, client: ApiClient, request: QuarantineRequest) -> IdentityOperationResponse:
        authorize(client, MERGE_SCOPE)
        brand = self._require_brand(client, request.brand_id, whole=True)
        ident = request.identifier
        fields = ("identifier.type", "identifier.value", "identifier.scope")
        key = identifier_key(ident.type, ident.value, ident.scope, self.phone_region(brand), fields)
        result = self._ops.quarantine(brand, key, client.name, request.reason)
        return self._operation("quarantine", client, result)

    # ---- privacy ------------------------------------------------------------------------------------------------

    def _wholly_visible(self, person_id: str, scope: ScopeRef, what: str) -> Profile:
        """The person, if everything of them lies in the scope: erasure and export reach all of a person's data."""
        profile = self._visible(person_id, scope)
        outside = sorted(set(profile.scoped_facts) - set(visible_scopes(profile, self._org, scope)))
        if outside:
            raise ForbiddenError(
                f"{what} reaches all of the person's data; {len(outside)} of their scopes lie outside this key's "
                f"scope {scope.label}: use a key that covers {', '.join(outside)}"
            )
        return profile

    def erase(self, client: ApiClient, person_id: str) -> ErasureReceipt:
        """Erase the person everywhere (identifiers suppressed first) and return the receipt; erasing again returns
        the stored receipt."""
        authorize(client, ERASE_SCOPE)
        stores = self._privacy
        stored = stores.records.receipt(person_id)
        if stored is not None:
            if not covers_brand(client.org_scope, self._org, stored.brand_id):
                raise NotFoundError(f"no person {person_id}")
        else:
            self._wholly_visible(person_id, client.org_scope, "erasure")
        return erase_person(
            person_id,
            client.name,
            stores.records,
            stores.archive,
            stores.ledger,
            stores.offers,
            self._publisher,
            self._org,
            self._now(),
        )

    def export(self, client: ApiClient, person_id: str) -> PersonExport:
        """Everything held on the person (subject access); the key must see all of the person's data."""
        authorize(client, READ_PROFILES_SCOPE)
        profile = self._wholly_visible(person_id, client.org_scope, "an export")
        return export_person(profile.person_id, self._privacy.records, self._org, self._now(), self._privacy.offers)
