"""Fixtures for the local runtime's own tests: a fresh runtime per test (handlers replaced by `Recorder`s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp_local.runtime import LocalRuntime


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    """A runtime without state machines (their ASL parse is the slow part of a start; SFN tests make their own)."""
    with LocalRuntime(state_machines=()) as rt:
        yield rt


@pytest.fixture
def asl_dir(tmp_path: Path) -> Path:
    """An empty state-machine folder: a test writes the ASL files it needs (the real ones belong to infra)."""
    folder = tmp_path / "statemachines"
    folder.mkdir()
    return folder
