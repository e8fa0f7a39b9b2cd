"""Request parsing for the audience HTTP API: every bad input becomes an InvalidInputError naming its field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from cdp.activation.models import ACTIVATION_ID_PATTERN, Activation
from cdp.audiences.models import ValidationIssue
from cdp.audiences.validation import pydantic_issues
from cdp.errors import InvalidInputError
from cdp.shared.openapi import ErrorBody
from cdp.shared.safe_json import loads as safe_loads
from cdp.tags.rules import NAME_PATTERN

Options = TypeVar("Options", bound=BaseModel)
_ID = re.compile(NAME_PATTERN)


class AudienceErrorBody(ErrorBody):
    """A 422: every problem of the definition, each with its field path."""

    errors: list[ValidationIssue] | None = Field(default=None, description="every problem, with its field path")


class ActivationErrorBody(ErrorBody):
    """A 502 (the ad platform refused for good) or 503 (refused for now, after the retries): the record, failed."""

    platform_code: str | None = Field(default=None, description="why, in a word (the platform's code when it gave one)")
    activation: Activation | None = Field(default=None, description="the activation, recorded as failed")


def audience_id(text: str) -> str:
    """A path segment that is an audience id (lower_snake_case): nothing else reaches an object key."""
    if not _ID.fullmatch(text):
        raise InvalidInputError(f"audience id {text!r} is not lower_snake_case (a-z, 0-9, _; up to 64)", "audience_id")
    return text


_ACTIVATION_ID = re.compile(ACTIVATION_ID_PATTERN)


def activation_id(text: str) -> str:
    """A path segment that is an activation id (its start time and a suffix, as the API answered it)."""
    if not _ACTIVATION_ID.fullmatch(text):
        raise InvalidInputError(f"activation id {text[:80]!r} is not one this API issued", "activation_id")
    return text


MAX_DEFINITION_DEPTH = 64  # a condition tree nests two JSON levels per level ({"all": [...]}): 32 levels deep


def json_body(text: str | None) -> Any:
    if not text or not text.strip():
        raise InvalidInputError("a JSON body is required (the audience definition)", "body")
    return safe_loads(text, "body", limit=MAX_DEFINITION_DEPTH)


def options(model: type[Options], text: str | None) -> Options:
    """An optional JSON body of options (empty: every default)."""
    raw = json_body(text) if text and text.strip() else {}
    if not isinstance(raw, dict):
        raise InvalidInputError("body must be a JSON object", "body")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = pydantic_issues(exc)[0]
        raise InvalidInputError(first.message, first.field) from exc


def int_query(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise InvalidInputError(f"{name} must be an integer from {low} to {high}", name) from exc
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be an integer from {low} to {high}", name)
    return value
