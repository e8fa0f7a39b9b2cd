"""Validators of the samples under events/ owned by the models, channels and campaigns contexts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EXTRA_VALIDATORS: dict[str, Callable[[Any], None]] = {}
