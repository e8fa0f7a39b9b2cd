"""Step Functions tasks that share one Lambda name their step with an `action` field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def action_discriminator(default: str) -> Callable[[Any], str]:
    """A pydantic Discriminator callable: the input's `action`, or `default` when the input omits it."""

    def action(value: Any) -> str:
        raw = value.get("action", default) if isinstance(value, dict) else getattr(value, "action", default)
        return str(raw)

    return action
