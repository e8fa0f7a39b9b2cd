"""The model registry API (`functions/model_api`): the reports a marketer and a data scientist read, a rollback, and
one person scored on demand.

    GET  /v1/models                                  models:read     every model: its promoted version and that
                                                                     version's headline (metric, value, interval,
                                                                     baseline, accepted)
    GET  /v1/models/{model_name}?limit=              models:read     its versions, newest first, each with its
                                                                     headline and whether it is the promoted one
    GET  /v1/models/{model_name}/versions/{version}  models:read     one version's report: its whole manifest
                                                                     (metrics, features, label window, rows,
                                                                     scikit-learn, SHA-256, rejected_because) and
                                                                     the label in words
    POST /v1/models/{model_name}/rollback            models:promote  {"version", "force"}: `latest` points at that
                                                                     saved version (its bytes verified by the store
                                                                     first); the pointer records the key's client
    POST /v1/models/{model_name}/score               models:score    {"person_id"} or {"identifier", "brand_id"},
                                                                     and "write": the person scored now by the
                                                                     promoted version and stored as the nightly
                                                                     score stores it

Who may call. The registry is deployment-wide (a model is trained on every brand's profiles, and `latest` is what
every brand's nightly score loads), so the registry routes take a key without an org-hierarchy scope, as audience
packages do (`cdp.audiences.service.authorize_audiences`). Scoring one person reads their whole timeline and writes
a brand-wide score and tags: the key must hold the person's whole brand (`ScopeRef.holds_brand`, as offers and
loyalty do); a person the key does not see at all is a 404, exactly like an unknown one (as the profile API answers).

A rollback refuses (409) the version already promoted, and one rejected at training (its manifest's
`rejected_because`), unless `force`; it may name any saved version, so an earlier rollback is undone the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from cdp.app.campaign_api import parsed_body
from cdp.app.inbox_api import IdentifierRef
from cdp.app.profile_api import identifier_key
from cdp.errors import (
    CdpError,
    ForbiddenError,
    InvalidInputError,
    ModelIntegrityError,
    NotFoundError,
    PayloadTooLargeError,
)
from cdp.ingest.auth import MODELS_PROMOTE_SCOPE, MODELS_READ_SCOPE, MODELS_SCORE_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.models.artifact import LatestPointer, ModelManifest
from cdp.models.headline import ModelHeadline, headline
from cdp.models.kinds import MODEL_NAME_PATTERN, VERSION_PATTERN, ModelVersion
from cdp.models.ports import ModelStore
from cdp.models.scoring import PromotedModels, score_people
from cdp.observability import logger
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileAnnotator, ProfileReader
from cdp.shared.time import utc_now
from cdp.tags.announcements import TagChange
from cdp.tags.service import ScoredPersons, TagEngine, refresh_scored

MAX_BODY_BYTES = 16 * 1024  # a rollback or a score request is a few hundred bytes
DEFAULT_VERSIONS = 20
MAX_VERSIONS = 100
MANIFESTS_KEPT = 500  # manifests kept between warm calls: every version a models page shows, many times over
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)
_LIMIT = re.compile(r"[0-9]{1,3}")
_BRAND_ID = r"^[A-Za-z0-9_.:@/#+\-]{1,128}$"
Body = TypeVar("Body", bound=BaseModel)

# ---- requests -----------------------------------------------------------------------------------------------------


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: ModelVersion = Field(description="a saved version of the model (the one `latest` points at next)")
    force: StrictBool = Field(
        default=False, description="promote even the version already promoted, or one rejected at training"
    )


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str | None = Field(default=None, min_length=1, max_length=128)
    identifier: IdentifierRef | None = None
    brand_id: str | None = Field(
        default=None, pattern=_BRAND_ID, description="the brand whose identifiers to look in (default: the key's)"
    )
    write: StrictBool = Field(default=True, description="false: answer the score without storing it")

    @model_validator(mode="after")
    def _one_person(self) -> ScoreRequest:
        if (self.person_id is None) == (self.identifier is None):
            raise ValueError("give exactly one of person_id or identifier")
        return self


# ---- answers ------------------------------------------------------------------------------------------------------


class Promotion(BaseModel):
    version: str
    promoted_at: datetime
    promoted_by: str | None = Field(description="the API client of a rollback; null: the train state machine")

    @classmethod
    def of(cls, pointer: LatestPointer) -> Promotion:
        return cls(version=pointer.version, promoted_at=pointer.promoted_at, promoted_by=pointer.promoted_by)


class ModelSummary(BaseModel):
    model_name: str
    kind: str | None = Field(description="what it predicts (the promoted version's; else the newest's)")
    versions: int = Field(description="saved versions")
    newest_version: str | None
    promoted: Promotion | None = Field(description="the version the nightly score loads; null: none promoted")
    headline: ModelHeadline | None = Field(description="the promoted version's; null: none promoted")
    problem: str | None = Field(default=None, description="why the pointer or its manifest could not be read")


class ModelList(BaseModel):
    models: list[ModelSummary]


class VersionSummary(BaseModel):
    version: str
    trained_at: datetime
    promoted: bool
    headline: ModelHeadline


class ModelVersions(BaseModel):
    model_name: str
    promoted: Promotion | None
    total: int = Field(description="saved versions; `versions` holds the newest `limit` of them")
    versions: list[VersionSummary] = Field(description="newest first")


class VersionReport(BaseModel):
    model_name: str
    version: str
    promoted: bool
    label: str = Field(description="what the score means, in words")
    headline: ModelHeadline
    manifest: ModelManifest = Field(
        description="everything training recorded: kind, label window, feature list, scikit-learn version, size and "
        "SHA-256, held-out metrics with row counts, the baseline and the promoted version compared, rejected_because"
    )


class RollbackResult(BaseModel):
    model_name: str
    version: str = Field(description="the version promoted now")
    previous_version: str | None = Field(description="the version promoted before (null: none was)")
    promoted_at: datetime
    promoted_by: str = Field(description="the API client that did it")
    forced: bool


class ScoreResult(BaseModel):
    model_name: str
    kind: str
    model_version: str = Field(description="the promoted version that scored")
    person_id: str = Field(description="the (surviving) person scored")
    brand_id: str
    score: float
    outputs: dict[str, float] = Field(description="further named numbers rules read as <model>.<output>")
    items: list[str] = Field(description="ranked items (next_product: categories)")
    scored_at: datetime
    written: bool = Field(description="stored on the profile with the predictive tags that read it")
    tag_changes: list[TagChange] = Field(description="the tags and audiences the score moved (none when not written)")


# ---- errors -------------------------------------------------------------------------------------------------------


class PromotionRefusedError(CdpError):
    """A rollback to a version that is already promoted, or that was rejected at training (409 unless forced)."""

    def __init__(self, reason: Literal["already_promoted", "rejected_at_training"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ---- parsing ------------------------------------------------------------------------------------------------------


def model_name_of(text: str) -> str:
    if not _MODEL_NAME.fullmatch(text):
        raise InvalidInputError(
            f"model name {text[:70]!r} is not a model name (a-z first, then a-z, 0-9, _; up to 64)", "model_name"
        )
    return text


def version_of(text: str) -> str:
    if not _VERSION.fullmatch(text):
        raise InvalidInputError(
            f"version {text[:70]!r} is not a model version (training time and hash, e.g. 20261206T030000Z-1a2b3c4d)",
            "version",
        )
    return text


def limit_of(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_VERSIONS
    if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= MAX_VERSIONS:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_VERSIONS}", "limit")
    return int(text)


def _parsed(model: type[Body], text: str | None, what: str) -> Body:
    """A required JSON object body of at most MAX_BODY_BYTES (413 above), as `model` (422 naming every problem)."""
    size = len((text or "").encode())
    if size > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body is {size} bytes; the limit is {MAX_BODY_BYTES}", "body")
    return parsed_body(model, text, what)


def authorize_registry(client: ApiClient, scope: str) -> ApiClient:
    """The key holds `scope` and no org-hierarchy scope: the registry serves every brand."""
    authorize(client, scope)
    if client.org_scope != ScopeRef():
        raise ForbiddenError(
            f"the model registry serves every brand of the deployment; the key of {client.name} is limited to "
            f"{client.org_scope.label}: use a key without an org scope"
        )
    return client


# ---- the service --------------------------------------------------------------------------------------------------


class ModelApi:
    """One method per route; each checks the permission scope, then the org scope, then does the work."""

    def __init__(
        self,
        store: ModelStore,
        reader: ProfileReader,
        annotator: ProfileAnnotator,
        engine: TagEngine,
        org: OrgDirectory,
        default_phone_region: str = "CN",
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._promoted = PromotedModels(store)  # verified models kept between warm calls; the pointer read each time
        # a version's manifest never changes once saved (a save writes it last, once): kept between warm calls, so
        # the list reads each model's pointer and versions only, not every shown manifest again
        self._manifests: dict[tuple[str, str], ModelManifest] = {}
        self._reader = reader
        self._annotator = annotator
        self._engine = engine
        self._org = org
        self._default_region = default_phone_region
        self._now = now

    # ---- the registry -------------------------------------------------------------------------------------------

    def models(self, client: ApiClient) -> ModelList:
        authorize_registry(client, MODELS_READ_SCOPE)
        return ModelList(models=[self._summary(name) for name in self._store.list_models()])

    def _summary(self, name: str) -> ModelSummary:
        """One model's line; a pointer or manifest that cannot be read is named in `problem`, not a failed list."""
        versions = self._store.versions(name)
        newest = versions[-1] if versions else None
        pointer: LatestPointer | None = None
        shown: ModelManifest | None = None
        problem = None
        try:
            pointer = self._store.latest(name)
            wanted = pointer.version if pointer else newest
            shown = self._saved_manifest(name, wanted) if wanted else None
        except (NotFoundError, ModelIntegrityError) as exc:
            logger.warning("model registry entry unreadable", model_name=name, error=str(exc))
            problem = str(exc)
        return ModelSummary(
            model_name=name,
            kind=shown.kind if shown else None,
            versions=len(versions),
            newest_version=newest,
            promoted=Promotion.of(pointer) if pointer else None,
            headline=headline(shown) if shown and pointer else None,
            problem=problem,
        )

    def model(self, client: ApiClient, name: str, limit: str | None = None) -> ModelVersions:
        authorize_registry(client, MODELS_READ_SCOPE)
        model_name, size = model_name_of(name), limit_of(limit)
        versions = self._known(model_name)  # oldest first: a version's name starts with its training time
        pointer = self._store.latest(model_name)
        manifests = [self._saved_manifest(model_name, v) for v in versions[::-1][:size]]  # only those shown are read
        manifests.sort(key=lambda m: (m.trained_at, m.version), reverse=True)
        promoted = pointer.version if pointer else None
        return ModelVersions(
            model_name=model_name,
            promoted=Promotion.of(pointer) if pointer else None,
            total=len(versions),
            versions=[
                VersionSummary(
                    version=m.version, trained_at=m.trained_at, promoted=m.version == promoted, headline=headline(m)
                )
                for m in manifests
            ],
        )

    def version(self, client: ApiClient, name: str, wanted: str) -> VersionReport:
        authorize_registry(client, MODELS_READ_SCOPE)
        model_name, version = model_name_of(name), version_of(wanted)
        manifest = self._manifest(model_name, version)
        pointer = self._store.latest(model_name)
        return VersionReport(
            model_name=model_name,
            version=version,
            promoted=pointer is not None and pointer.version == version,
            label=manifest.label.describe(),
            headline=headline(manifest),
            manifest=manifest,
        )

    def rollback(self, client: ApiClient, name: str, body: str | None) -> RollbackResult:
        authorize_registry(client, MODELS_PROMOTE_SCOPE)
        model_name = model_name_of(name)
        request = _parsed(RollbackRequest, body, "rollback request")
        manifest = self._manifest(model_name, request.version)
        previous = self._store.latest(model_name)
        if not request.force:
            if previous is not None and previous.version == request.version:
                raise PromotionRefusedError(
                    "already_promoted",
                    f"model {model_name}/{request.version} is the promoted version already (force: true to record "
                    "a promotion again)",
                )
            if manifest.rejected_because or not manifest.accepted:
                reasons = "; ".join(manifest.rejected_because) or "its evaluation did not pass"
                raise PromotionRefusedError(
                    "rejected_at_training",
                    f"model {model_name}/{request.version} was rejected at training: {reasons} (force: true to "
                    "promote it anyway)",
                )
        pointer = self._store.promote(model_name, request.version, self._now(), by=client.name)
        logger.info(
            "model rolled back",
            model_name=model_name,
            version=pointer.version,
            previous_version=previous.version if previous else None,
            forced=request.force,
        )
        return RollbackResult(
            model_name=model_name,
            version=pointer.version,
            previous_version=previous.version if previous else None,
            promoted_at=pointer.promoted_at,
            promoted_by=client.name,
            forced=request.force,
        )

    def _known(self, model_name: str) -> list[str]:
        versions = self._store.versions(model_name)
        if not versions:
            raise NotFoundError(f"no model {model_name} in the registry")
        return versions

    def _manifest(self, model_name: str, version: str) -> ModelManifest:
        self._known(model_name)  # an unknown model says so, before an unknown version of a known one
        return self._saved_manifest(model_name, version)

    def _saved_manifest(self, model_name: str, version: str) -> ModelManifest:
        """A saved version's manifest, read from the store once (a missing or unreadable one is never kept)."""
        key = (model_name, version)
        manifest = self._manifests.get(key)
        if manifest is None:
            manifest = self._store.manifest(model_name, version)
            if len(self._manifests) >= MANIFESTS_KEPT:
                self._manifests.pop(next(iter(self._manifests)))  # the oldest read
            self._manifests[key] = manifest
        return manifest

    # ---- one person scored now ------------------------------------------------------------------------------------

    def score(self, client: ApiClient, name: str, body: str | None) -> ScoreResult:
        authorize(client, MODELS_SCORE_SCOPE)
        model_name = model_name_of(name)
        request = _parsed(ScoreRequest, body, "score request")
        if self._store.latest(model_name) is None:
            self._known(model_name)
            raise NotFoundError(f"model {model_name} has no promoted version: promote one (or train it) first")
        profile = self._person(client, request)
        model = self._promoted.latest(model_name)
        now = self._now()
        timeline = self._reader.timeline(profile)
        changes: list[TagChange] = []
        if request.write:  # written as a nightly shard writes it: one write with the tags reading it
            scored = ScoredPersons(self._annotator, self._engine, now, keep_changes=True)
            (scores,) = score_people([(profile, timeline)], {model_name: model}, scored, now)
            refresh_scored(self._engine, scored, now)  # the person changed since the read: their tags follow now
            changes = [TagChange(tag=c.tag, old=c.old, new=c.new, at=c.at) for c in scored.changed or []]
        else:
            (scores,) = score_people([(profile, timeline)], {model_name: model}, None, now)
        score = scores[model_name]
        logger.info(
            "person scored on demand",
            model_name=model_name,
            version=score.model_version,
            person_id=profile.person_id,
            written=request.write,
            tag_changes=len(changes),
        )
        return ScoreResult(
            model_name=model_name,
            kind=model.manifest.kind,
            model_version=score.model_version,
            person_id=profile.person_id,
            brand_id=profile.brand_id,
            score=score.score,
            outputs=score.outputs,
            items=score.items,
            scored_at=score.scored_at,
            written=request.write,
            tag_changes=changes,
        )

    def _person(self, client: ApiClient, request: ScoreRequest) -> Profile:
        """The person the request names, if the key sees them; a 404 exactly like an unknown person's otherwise."""
        if request.identifier is not None:
            brand = request.brand_id or client.org_scope.brand_id
            if not brand:
                raise InvalidInputError(
                    "brand_id is required with an identifier (the key is not limited to a brand)", "brand_id"
                )
            ref = request.identifier
            fields = ("identifier.type", "identifier.value", "identifier.scope")
            key = identifier_key(ref.type, ref.value, ref.scope, self._phone_region(brand), fields)
            wanted = self._reader.person_for_identifier(brand, key)
            if wanted is None:
                raise NotFoundError(f"no person holds {key} in brand {brand}")
        else:
            wanted = str(request.person_id)
        profile = self._reader.get(wanted)
        if profile is None or profile.dissolved or not client.org_scope.covers_brand(self._org, profile.brand_id):
            raise NotFoundError(f"no person {wanted}")
        if request.person_id is not None and request.brand_id not in (None, profile.brand_id):
            raise NotFoundError(f"no person {wanted} in brand {request.brand_id}")
        if not client.org_scope.holds_brand(self._org, profile.brand_id):
            raise ForbiddenError(
                f"scoring reads the person's whole timeline and writes a brand-wide score; the key of {client.name} "
                f"is limited to {client.org_scope.label}: use a key that holds brand {profile.brand_id}"
            )
        return profile

    def _phone_region(self, brand_id: str) -> str:
        brand = self._org.brands.get(brand_id)
        return brand.phone_region if brand else self._default_region
