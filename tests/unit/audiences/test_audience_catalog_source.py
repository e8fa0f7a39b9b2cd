"""Which catalog audiences are checked against: the brand's files in the bucket, else the bundled catalog."""

from __future__ import annotations

import pytest

from cdp.audiences.validation import validate
from cdp.errors import StoreError
from cdp.tags.catalog_source import CATALOG_PREFIX, CatalogSource
from tests.fakes.objects import InMemoryObjectStore
from tests.unit.audiences.conftest import definition

OWN_CATALOG = b"""
version: 3
tags:
  - name: vip_flag
    description: a gold member
    category: value
    kind: rule
    freshness: real_time
    owner: crm
    rule: {when: {attr: member_level, eq: gold}}
"""


def test_without_files_in_the_bucket_the_bundled_catalog_is_used(objects: InMemoryObjectStore) -> None:
    assert "lifecycle" in CatalogSource(objects)().definitions
    assert "lifecycle" in CatalogSource(None)().definitions


def test_the_brands_own_catalog_replaces_the_bundled_one_and_is_cached(objects: InMemoryObjectStore) -> None:
    now = [0.0]
    source = CatalogSource(objects, ttl_s=300, clock=lambda: now[0])
    objects.put_bytes(f"{CATALOG_PREFIX}value.yaml", OWN_CATALOG)
    catalog = source()
    assert list(catalog.definitions) == ["vip_flag"] and catalog.version.endswith("@3")
    # Given the catalog is then broken: the cached one is served until the TTL lapses
    objects.put_bytes(f"{CATALOG_PREFIX}value.yaml", b"tags: [")
    assert source() is catalog
    now[0] = 301.0
    with pytest.raises(StoreError, match="tag catalog under tags/catalog/ is invalid"):
        source()
    # And audiences are validated against the brand's tags
    report = validate(definition(include={"tag": "lifecycle", "eq": "dormant"}), catalog, {})
    assert report.errors[0].message.startswith("unknown tag 'lifecycle'")
    assert validate(definition(include={"tag": "vip_flag", "eq": True}), catalog, {}).valid
