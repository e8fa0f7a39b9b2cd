"""Request parsing for the campaign HTTP API: every bad input becomes an InvalidInputError naming its field."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from cdp.app.profile_api import identifier_key
from cdp.audiences.models import ValidationIssue
from cdp.audiences.validation import pydantic_issues
from cdp.campaigns.definition import CAMPAIGN_ID_PATTERN
from cdp.campaigns.sweeps import LocationSignal, WeatherSignal
from cdp.errors import InvalidInputError, NotFoundError
from cdp.ingest.events import Token, UtcDatetime
from cdp.ingest.ports import ApiClient
from cdp.profile.ports import ProfileReader
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


class PreviewRequest(StartRequest):
    person_id: str = Field(min_length=1, max_length=128, description="one of the brand's persons")


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


class InvalidBodyError(InvalidInputError):
    """A body that does not validate: every problem with its field path (422)."""

    def __init__(self, what: str, exc: ValidationError) -> None:
        self.errors = pydantic_issues(exc)
        first = self.errors[0]
        super().__init__(f"the {what} is not valid: {first.field}: {first.message}", first.field)


def parsed_body(model: type[Body], text: str | None, what: str, defaults: dict[str, Any] | None = None) -> Body:
    """A required JSON body as `model` (`defaults` fill what it leaves out); InvalidBodyError lists every problem."""
    raw = json_object(text, what)
    try:
        return model.model_validate({**(defaults or {}), **raw})
    except ValidationError as exc:
        raise InvalidBodyError(what, exc) from exc


def options(model: type[Body], text: str | None) -> Body:
    """An optional JSON body (empty: every default)."""
    raw = json_object(text, model.__name__) if text and text.strip() else {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = pydantic_issues(exc)[0]
        raise InvalidInputError(first.message, first.field) from exc


# ---- external signals ---------------------------------------------------------------------------------------------


class WeatherSignalRequest(BaseModel):
    """A temperature reading for a city; journeys with a weather trigger whose threshold it crosses sweep the
    persons of that city."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["weather"]
    city: str = Field(min_length=1, max_length=100)
    temperature_c: float = Field(ge=-90, le=60)
    observed_at: UtcDatetime


class SignalIdentifier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32, description="e.g. device_id, phone")
    value: str = Field(min_length=1, max_length=256)
    scope: str | None = Field(default=None, max_length=128)


class LocationSignalRequest(BaseModel):
    """A person's device entered a place: a store's geofence (`store_id`) or home. The person is named by an
    identifier (e.g. the device id) or their person id."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["location"]
    identifier: SignalIdentifier | None = None
    person_id: str | None = Field(default=None, min_length=1, max_length=128)
    place: Literal["store", "home"]
    store_id: Token | None = None
    at: UtcDatetime

    @model_validator(mode="after")
    def _one_person(self) -> LocationSignalRequest:
        if (self.identifier is None) == (self.person_id is None):
            raise ValueError("name the person by exactly one of identifier or person_id")
        if self.place == "store" and self.store_id is None:
            raise ValueError("a store signal names its store_id")
        return self


class SignalRequest(RootModel[Annotated[WeatherSignalRequest | LocationSignalRequest, Field(discriminator="kind")]]):
    """`POST /v1/signals`: one signal, `kind` weather or location."""


MAX_SIGNAL_AHEAD = timedelta(minutes=10)  # clocks of weather feeds and phones run a little ahead


class SignalAccepted(BaseModel):
    kind: Literal["weather", "location"]
    person_id: str | None = Field(default=None, description="a location's person, as resolved")


def signal_of(
    text: str | None, brand_id: str, person_of: Callable[[LocationSignalRequest], str | None], now: datetime
) -> WeatherSignal | LocationSignal:
    """The signal for the journey function; a location's person resolved by `person_of` (404 when unknown). A signal
    from the future is refused: a weather reading dated ahead would outrank every real one of its city."""
    raw = json_object(text, "the signal")
    if raw.get("kind") not in ("weather", "location"):
        raise InvalidInputError(f"kind must be weather or location, not {str(raw.get('kind'))[:40]!r}", "kind")
    try:
        request = SignalRequest.model_validate(raw).root
    except ValidationError as exc:
        first = pydantic_issues(exc)[0]
        field = first.field.removeprefix(f"{raw['kind']}.")  # the union's tag is not a field of the body
        raise InvalidInputError(first.message, field) from exc
    when, field = (
        (request.observed_at, "observed_at") if isinstance(request, WeatherSignalRequest) else (request.at, "at")
    )
    if when > now + MAX_SIGNAL_AHEAD:
        raise InvalidInputError(f"{field} is in the future ({when.isoformat()}): send a signal when it happens", field)
    if isinstance(request, WeatherSignalRequest):
        return WeatherSignal(brand_id=brand_id, **request.model_dump(exclude={"kind"}))
    person_id = person_of(request)
    if person_id is None:
        raise NotFoundError("no person of the brand has that identifier (or person id)")
    return LocationSignal(
        brand_id=brand_id, person_id=person_id, place=request.place, store_id=request.store_id, at=request.at
    )


def person_of_signal(
    request: LocationSignalRequest, brand_id: str, profiles: ProfileReader, phone_region: str
) -> str | None:
    """The surviving person a location signal names (by identifier in the brand's namespace, or by person id)."""
    if request.person_id is not None:
        profile = profiles.get(request.person_id)
        return profile.person_id if profile is not None and profile.brand_id == brand_id else None
    assert request.identifier is not None
    ident = request.identifier
    fields = ("identifier.type", "identifier.value", "identifier.scope")
    return profiles.person_for_identifier(
        brand_id, identifier_key(ident.type, ident.value, ident.scope, phone_region, fields)
    )


class TestSendRequest(BaseModel):
    """`POST /v1/campaigns/{id}/test-send`: the seeds (default: the brand's `campaigns.seed_list`) and a version."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, description="default: the latest version")
    seeds: list[SignalIdentifier] | None = Field(default=None, min_length=1, max_length=50)


def seed_persons(
    request: TestSendRequest, seed_list: list[str], brand_id: str, profiles: ProfileReader, phone_region: str
) -> tuple[list[str], list[str]]:
    """The seeds' persons (each once) and the seeds that name no person of the brand."""
    keys = [
        identifier_key(s.type, s.value, s.scope, phone_region, (f"seeds[{i}].type", f"seeds[{i}].value", "scope"))
        for i, s in enumerate(request.seeds or [])
    ] or list(seed_list)
    found: dict[str, None] = {}
    unknown = []
    for key in keys:
        person_id = profiles.person_for_identifier(brand_id, key)
        if person_id is None:
            unknown.append(key)
        else:
            found[person_id] = None
    return list(found), unknown
