"""What an erasure leaves for the warehouse: the days whose event partitions hold the person's rows.

Parquet files cannot be edited in place, and the profile API that erases a person has neither the Parquet engine
nor the time to rewrite a brand's partitions (29 s). So `cdp.privacy` writes one request per erased person under
`warehouse/_erasures/`, and the next warehouse export (nightly) rewrites those partitions without the persons'
rows, leaves them out of the profile and tag snapshots it writes, and deletes the request. Old versions of the
rewritten files expire after a day (`WAREHOUSE_NONCURRENT_DAYS`).

The request names the persons only by the SHA-256 of their ids (the export compares hashes), with their brands and
days: nothing in the bucket names an erased person once the erasure has returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from cdp.warehouse.schema import ERASURES_PREFIX


def person_hash(person_id: str) -> str:
    return hashlib.sha256(person_id.encode()).hexdigest()


class ErasureRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    person_hash: str = Field(description="SHA-256 of the erased (surviving) person's id")
    person_hashes: list[str] = Field(description="SHA-256 of every id their rows may carry: survivor, merged persons")
    brand_id: str = Field(description="the person's brand (their profile and tag snapshot rows)")
    erased_at: datetime
    days: dict[str, list[date]] = Field(
        default_factory=dict, description="brand -> the UTC days of the person's events (their event partitions)"
    )

    @property
    def key(self) -> str:
        return request_key(self.person_hash)

    @property
    def brands(self) -> set[str]:
        return {self.brand_id, *self.days}


def request_key(hashed_person_id: str) -> str:
    return f"{ERASURES_PREFIX}{hashed_person_id}.json"


def erasure_request(
    person_id: str,
    person_ids: Iterable[str],
    brand_id: str,
    erased_at: datetime,
    event_days: Iterable[tuple[str, date]],
) -> ErasureRequest:
    days: dict[str, set[date]] = {}
    for brand, day in event_days:
        days.setdefault(brand, set()).add(day)
    return ErasureRequest(
        person_hash=person_hash(person_id),
        person_hashes=sorted({person_hash(p) for p in {person_id, *person_ids}}),
        brand_id=brand_id,
        erased_at=erased_at,
        days={brand: sorted(found) for brand, found in sorted(days.items())},
    )
