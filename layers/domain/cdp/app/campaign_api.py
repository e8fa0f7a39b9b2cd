"""Request parsing for the campaign HTTP API: every bad input becomes an InvalidInputError naming its field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from cdp.audiences.models import ValidationIssue
from cdp.audiences.validation import pydantic_issues
from cdp.campaigns.definition import CAMPAIGN_ID_PATTERN
from cdp.errors import InvalidInputError
from cdp.ingest.ports import ApiClient
from cdp.shared.openapi import ErrorBody
from cdp.shared.safe_json import loads as safe_loads

Body = TypeVar("Body", bound=BaseModel)
MAX_DEPTH = 32
_CAMPAIGN_ID = re.compile(CAMPAIGN_ID_PATTERN)
_RUN_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}-v[0-9]{1,6}-[0-9]{8}T[0-9]{4,6}Z$")
_BRAND_ID = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")


class CampaignErrorBody(ErrorBody):
    """A 422: every problem of the definition, each with its field path."""

    errors: list[ValidationIssue] | None = Field(default=None, description="every problem, with its field path")


class ApproveRequest(BaseModel):
    version: int = Field(ge=1, description="the version approved (approval is per version)")


class StartRequest(BaseModel):
    version: int | None = Field(default=None, ge=1, description="default: the latest version")


def campaign_id(text: str) -> str:
    if not _CAMPAIGN_ID.fullmatch(text):
        raise InvalidInputError(f"campaign id {text!r} is not lower_snake_case (a-z, 0-9, _; up to 48)", "campaign_id")
    return text


def run_id(text: str) -> str:
    if not _RUN_ID.fullmatch(text):
        raise InvalidInputError(f"run id {text!r} is not a run id ({{campaign}}-v{{version}}-{{time}}Z)", "run_id")
    return text


def version_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 999_999:
        raise InvalidInputError(f"version {text!r} is not a number from 1", "version")
    return int(text)


def brand_of(query: str | None, client: ApiClient) -> str:
    """The brand a request is about: `?brand_id=`, else the brand the key is limited to."""
    brand = query or client.org_scope.brand_id
    if not brand:
        raise InvalidInputError(
            "brand_id is required (a query parameter: the key is not limited to a brand)", "brand_id"
        )
    if not _BRAND_ID.fullmatch(brand):
        raise InvalidInputError(f"brand_id {brand[:130]!r} is not a brand id", "brand_id")
    return brand


def json_object(text: str | None, what: str) -> dict[str, Any]:
    if not text or not text.strip():
        raise InvalidInputError(f"a JSON body is required ({what})", "body")
    parsed = safe_loads(text, "body", limit=MAX_DEPTH)
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"body must be a JSON object ({what})", "body")
    return parsed


def options(model: type[Body], text: str | None) -> Body:
    """An optional JSON body (empty: every default)."""
    raw = json_object(text, model.__name__) if text and text.strip() else {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = pydantic_issues(exc)[0]
        raise InvalidInputError(first.message, first.field) from exc
