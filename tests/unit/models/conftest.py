"""Fixtures of the models unit suite: synthetic histories (built once per session) and an in-memory model store."""

from __future__ import annotations

import pytest

from tests.fakes.model_histories import Synthetic, synthetic_histories
from tests.fakes.model_store import InMemoryModelStore


@pytest.fixture(scope="session")
def with_signal() -> Synthetic:
    return synthetic_histories(600, seed=11, signal=True)


@pytest.fixture(scope="session")
def without_signal() -> Synthetic:
    return synthetic_histories(600, seed=12, signal=False)


@pytest.fixture
def model_store() -> InMemoryModelStore:
    return InMemoryModelStore()
