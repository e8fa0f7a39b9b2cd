from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.campaigns.journey_world import World, make_world


@pytest.fixture
def world() -> Iterator[World]:
    with make_world() as built:
        yield built
