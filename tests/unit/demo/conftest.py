"""The default synthetic brand, generated once per test session (about a second)."""

from __future__ import annotations

import pytest

from cdp_local.demo import SyntheticBrand, generate_brand


@pytest.fixture(scope="session")
def brand() -> SyntheticBrand:
    return generate_brand()
