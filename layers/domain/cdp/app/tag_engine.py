"""Wiring of the tag engine on AWS: profiles in DynamoDB, the catalog and dynamic audiences in S3, changes on the bus.

tag_update, tag_sweep and scoring (predictive tags) build the same engine: `tag_engine(settings)`. Clients are
made on first use (never at import), or injected (tests, the local runtime, benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cdp.audiences.store import AudienceStore
from cdp.settings import TagSettings
from cdp.shared.aws import EventBridgePublisher, S3ObjectStore
from cdp.tags.catalog_source import CatalogSource
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.ports import CachedAudiences
from cdp.tags.selection import TagRules
from cdp.tags.service import TagEngine

AUDIENCE_TTL_SECONDS = 60.0
"""A new or edited dynamic audience reaches a warm tag function within this long; no event pays an S3 call."""


def tag_engine(
    settings: TagSettings,
    *,
    dynamodb: Any = None,
    s3: Any = None,
    events: Any = None,
    store: DynamoTagStore | None = None,
) -> tuple[TagEngine, DynamoTagStore]:
    """The engine and the profile store it writes through (the sweep also scans with it)."""
    profiles = store or DynamoTagStore(settings.profiles_table, client=dynamodb)
    objects = S3ObjectStore(settings.data_bucket, s3)
    engine = TagEngine(
        CatalogSource(objects),  # the brand's catalog under tags/catalog/ when there is one, else the bundled one
        CachedAudiences(AudienceStore(objects).dynamic_definitions, ttl_seconds=AUDIENCE_TTL_SECONDS),
        profiles,
        profiles,
        profiles,
        EventBridgePublisher(settings.event_bus_name, events),
    )
    return engine, profiles


def tag_rules(data_bucket: str, s3: Any = None) -> Callable[[], TagRules]:
    """The catalog and dynamic audiences exactly as tag_update reads them, for an offline replay (history import)."""
    objects = S3ObjectStore(data_bucket, s3)
    catalog, audiences = CatalogSource(objects), AudienceStore(objects)
    return lambda: TagRules(catalog(), audiences.dynamic_definitions())
