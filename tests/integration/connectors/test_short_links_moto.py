"""Short links on DynamoDB (moto): a 9-character code drawn at random stands for its token until it expires."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.connectors.short_links import LINK_LIFETIME, SHORT_CODE, DynamoShortLinks
from cdp_local.runtime.core import create_table

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def links() -> Iterator[DynamoShortLinks]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_table(db, topology.LEDGER_TABLE)
        yield DynamoShortLinks(topology.LEDGER_TABLE.local_name, client=db)


def test_a_code_resolves_to_its_token_until_it_expires(links: DynamoShortLinks) -> None:
    code = links.shorten("token-1", NOW)
    assert SHORT_CODE.match(code)
    assert links.resolve(code, NOW + timedelta(days=30)) == "token-1"
    assert links.resolve(code, NOW + LINK_LIFETIME + timedelta(seconds=1)) is None  # past its TTL, not yet swept


def test_codes_are_distinct_and_unknown_or_malformed_codes_resolve_to_nothing(links: DynamoShortLinks) -> None:
    codes = {links.shorten(f"t{n}", NOW) for n in range(200)}
    assert len(codes) == 200
    assert links.resolve("AAAAAAAAA", NOW) is None
    assert links.resolve("../LINK#x", NOW) is None  # never reaches the table
