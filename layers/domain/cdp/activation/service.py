"""Push an audience snapshot's members to an ad platform as hashed identifiers, over injected ports.

Who may: a key holding `audiences:write` that sees the whole brand whose ad account uploads (unscoped, its group or
the brand; a store's key may not); listing needs `audiences:read` and shows the activations of the brands the key
sees. Only that brand's customers are uploaded, whatever else the snapshot holds.

Each member is counted once, under the first reason it is left out, in this order: no profile any more
(`not_found`), another brand's customer (`other_brand`), no marketing opt-in on the request's consent channel
(`no_consent`), the brand's global control group or one of its suppression audiences (`global_control`,
`suppression_list`: the rules the send path applies, `cdp.channels.contact.exclusion`), the same person again
(`duplicate`: members merged since the snapshot), or no identifier the platform matches (`no_identifier`); everyone
else is `uploaded`, as the hashes of their mobile numbers (never in clear).

One request reads at most `part_size` snapshot members (10,000: their profiles are 200 BatchGetItem calls, and the
upload one file, well inside the HTTP API's 29 seconds). A larger snapshot is refused unless the request asks for
parts (`in_parts`); then each request uploads one part, the record says what is left (`status: in_progress`,
`next_offset`) and `resume` uploads the next (the CLI loops until `complete`). Nothing is ever cut short silently.

A part that fails (the platform refused, or did not answer, after the retries) leaves the record `failed` with the
platform's code; its counts and files are those of the parts that completed, and `resume` runs the failed part again
(appending ids a file already holds changes nothing at the platform).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cdp.activation.models import Activation, ActivationCounts, ActivationList, ActivationRequest
from cdp.activation.ports import AdPlatform, AdPlatformError, AdPlatforms, PlatformName
from cdp.activation.store import ActivationStore
from cdp.audiences.models import SnapshotManifest
from cdp.audiences.store import AudienceStore
from cdp.channels.contact import exclusion
from cdp.errors import CdpError, ForbiddenError, InvalidInputError
from cdp.identifiers.model import IdentifierType
from cdp.ingest.auth import AUDIENCES_READ_SCOPE, AUDIENCES_WRITE_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.observability import logger
from cdp.org import BrandConfig, OrgDirectory
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader
from cdp.shared.time import utc_now

PART_SIZE = 10_000
STALE_RUNNING = timedelta(minutes=2)  # a `running` record older than this was left by a request that died
_PHONE = f"{IdentifierType.PHONE.value}:"


class ActivationFailed(CdpError):
    """The platform refused or did not answer a part (after the retries); the record says so (`failed`)."""

    def __init__(self, activation: Activation, cause: AdPlatformError) -> None:
        super().__init__(str(cause))
        self.activation = activation
        self.permanent = cause.permanent
        self.code = cause.code


class ActivationStateError(CdpError):
    """The activation cannot be continued now (complete, or a request is uploading it): HTTP 409."""


def authorize_activation(client: ApiClient, org: OrgDirectory, brand_id: str) -> ApiClient:
    authorize(client, AUDIENCES_WRITE_SCOPE)
    if not client.org_scope.holds_brand(org, brand_id):
        raise ForbiddenError(f"the key of {client.name} is limited to {client.org_scope.label}, not brand {brand_id}")
    return client


def activation_id_for(at: datetime) -> str:
    """Sortable by start: the second, the microsecond in 5 hex digits, 3 random ones (the snapshot ids' form)."""
    return f"{at:%Y%m%dT%H%M%SZ}-{at.microsecond:05x}{uuid.uuid4().hex[:3]}"


@dataclass(frozen=True)
class _Part:
    counts: ActivationCounts
    hashes: list[str]


class ActivationService:
    def __init__(
        self,
        audiences: AudienceStore,
        profiles: ProfileReader,
        org: OrgDirectory,
        store: ActivationStore,
        platforms: AdPlatforms,
        now: Callable[[], datetime] = utc_now,
        part_size: int = PART_SIZE,
    ) -> None:
        self._audiences = audiences
        self._profiles = profiles
        self._org = org
        self._store = store
        self._platforms = platforms
        self._now = now
        self._part_size = part_size

    # ---- the API ------------------------------------------------------------------------------------------------

    def activate(self, client: ApiClient, audience_id: str, request: ActivationRequest) -> Activation:
        authorize_activation(client, self._org, request.brand_id)
        self._audiences.get(audience_id)  # an unknown or deleted audience is a 404
        manifest = self._manifest(audience_id, request.snapshot_id)
        platform = self._platform(request.brand_id, request.platform)
        if manifest.count > self._part_size and not request.in_parts:
            raise InvalidInputError(
                f"snapshot {manifest.snapshot_id} has {manifest.count:,} members, more than the {self._part_size:,} "
                'one request uploads within the API\'s 29 seconds: send "in_parts": true and continue with POST '
                f"/v1/audiences/{audience_id}/activations/{{activation_id}}/continue until it is complete (`cdp "
                f"audience activate {audience_id} --platform {request.platform}` does)",
                "in_parts",
            )
        now = self._now()
        record = Activation(
            activation_id=activation_id_for(now),
            audience_id=audience_id,
            brand_id=request.brand_id,
            platform=request.platform,
            id_type=platform.id_type,
            snapshot_id=manifest.snapshot_id,
            snapshot_count=manifest.count,
            consent_channel=request.consent_channel,
            status="running",
            next_offset=0,
            part_size=self._part_size,
            started_at=now,
            updated_at=now,
        )
        self._store.put(record)
        logger.info(
            "activation started",
            audience_id=audience_id,
            activation_id=record.activation_id,
            platform=request.platform,
            brand_id=request.brand_id,
            snapshot_id=manifest.snapshot_id,
            members=manifest.count,
        )
        return self._run_part(record, manifest, platform)

    def resume(self, client: ApiClient, audience_id: str, activation_id: str) -> Activation:
        record = self._store.get(audience_id, activation_id)
        authorize_activation(client, self._org, record.brand_id)
        now = self._now()
        if record.status == "complete":
            raise ActivationStateError(f"activation {activation_id} is complete: nothing is left to upload")
        if record.status == "running" and now - record.updated_at < STALE_RUNNING:
            raise ActivationStateError(f"activation {activation_id} is being uploaded by another request: wait for it")
        platform = self._platform(record.brand_id, record.platform)
        manifest = self._audiences.snapshot(audience_id, record.snapshot_id)
        record = record.model_copy(update={"status": "running", "updated_at": now, "error": None, "error_code": None})
        self._store.put(record)
        return self._run_part(record, manifest, platform)

    def activations(self, client: ApiClient, audience_id: str) -> ActivationList:
        authorize(client, AUDIENCES_READ_SCOPE)
        found = self._store.activations(audience_id)
        if not found:
            self._audiences.get(audience_id)  # an unknown audience is a 404, a known one without activations empty
        visible = [a for a in found if client.org_scope.holds_brand(self._org, a.brand_id)]
        return ActivationList(audience_id=audience_id, activations=visible)

    # ---- one part -----------------------------------------------------------------------------------------------

    def _run_part(self, record: Activation, manifest: SnapshotManifest, platform: AdPlatform) -> Activation:
        start = record.next_offset
        members = self._store.members(manifest.member_keys, start, self._part_size)
        part = self._select(record, members, platform)
        name = f"{record.audience_id[:21]} {record.snapshot_id[:8]}"
        description = (
            f"cdp activation {record.activation_id}: audience {record.audience_id}, snapshot {record.snapshot_id}"
        )
        audience_ref = record.platform_audience_id
        files: list[str] = []
        last = not members or start + len(members) >= manifest.count  # (a short members file ends it too)
        try:
            for i in range(0, len(part.hashes), platform.max_ids_per_file):
                if audience_ref is None:  # created with the first file: nobody to upload, no empty audience
                    audience_ref = platform.create_audience(name, description)
                    record = record.model_copy(update={"platform_audience_id": audience_ref})
                files.append(platform.upload(audience_ref, part.hashes[i : i + platform.max_ids_per_file]))
            platform_id = audience_ref
            if last and (record.file_refs or files):
                platform_id = platform.complete(audience_ref, [*record.file_refs, *files], name, description)
        except AdPlatformError as exc:
            failed = record.model_copy(
                update={"status": "failed", "updated_at": self._now(), "error": str(exc), "error_code": exc.code}
            )
            self._store.put(failed)
            logger.warning(
                "activation part failed",
                audience_id=record.audience_id,
                activation_id=record.activation_id,
                offset=start,
                code=exc.code,
                permanent=exc.permanent,
            )
            raise ActivationFailed(failed, exc) from exc
        now = self._now()
        done = record.model_copy(
            update={
                "status": "complete" if last else "in_progress",
                "platform_audience_id": platform_id,
                "file_refs": [*record.file_refs, *files],
                "next_offset": start + len(members),
                "counts": record.counts.add(part.counts),
                "updated_at": now,
                "finished_at": now if last else None,
            }
        )
        self._store.put(done)
        logger.info(
            "activation part uploaded",
            audience_id=done.audience_id,
            activation_id=done.activation_id,
            status=done.status,
            members=part.counts.members,
            uploaded=part.counts.uploaded,
            files=len(files),
        )
        return done

    def _select(self, record: Activation, members: list[str], platform: AdPlatform) -> _Part:
        """Who of `members` is uploaded (their hashes, deduplicated, in member order) and why the others are not."""
        profiles = self._profiles.get_many(members)  # follows merged_into: a merged member is its survivor now
        brand = self._org.brand(record.brand_id)
        tally = dict.fromkeys(ActivationCounts.model_fields, 0)
        tally["members"] = len(members)
        hashes: dict[str, None] = {}
        seen: set[str] = set()
        for person_id in members:
            profile = profiles.get(person_id)
            reason = _left_out(profile, brand, record.consent_channel, seen)
            if reason is None and profile is not None:
                found = [h for h in (platform.identifier(p) for p in _phones(profile)) if h is not None]
                reason = None if found else "no_identifier"
                hashes.update(dict.fromkeys(found))
                seen.add(profile.person_id)
            tally[reason or "uploaded"] += 1
        tally["identifiers"] = len(hashes)
        return _Part(ActivationCounts(**tally), list(hashes))

    def _platform(self, brand_id: str, name: PlatformName) -> AdPlatform:
        platform = self._platforms.platform(brand_id, name)
        if platform is None:
            raise InvalidInputError(
                f"brand {brand_id} has no {name} account: name one in the sources secret's ad_platforms.{brand_id}",
                "platform",
            )
        return platform

    def _manifest(self, audience_id: str, snapshot_id: str | None) -> SnapshotManifest:
        """The named snapshot, else the latest (NotFoundError: none, "export it first")."""
        if snapshot_id is None:
            return self._audiences.latest_snapshot(audience_id)
        return self._audiences.snapshot(audience_id, snapshot_id)


def _left_out(profile: Profile | None, brand: BrandConfig, consent: str, seen: set[str]) -> str | None:
    if profile is None or profile.dissolved:
        return "not_found"
    if profile.brand_id != brand.brand_id:
        return "other_brand"
    if not profile.has_consent(consent):
        return "no_consent"
    excluded = exclusion(brand, profile)
    if excluded is not None:
        return excluded
    if profile.person_id in seen:
        return "duplicate"
    return None


def _phones(profile: Profile) -> list[str]:
    return [key.removeprefix(_PHONE) for key in profile.identifiers if key.startswith(_PHONE)]
