"""OpenAPI documentation helpers for the Powertools resolvers, and the merge into one document for the whole API.

Routes parse their own bodies (authentication comes first, so a stranger learns nothing from validation errors); the
request body and query parameters are therefore declared next to each route with `body(...)` / `query(...)` in
`openapi_extensions`, and responses with `responses(...)`. `merged_document` combines every function's resolver
with Powertools' `OpenAPIMerge` and adds the request models' schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import Enum
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from pydantic import BaseModel, Field, TypeAdapter

_QUERY_KEY = "x-cdp-query"
_REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {}

STATUS_TEXT = {
    400: "the request is malformed; `field` names what is wrong",
    401: "missing or wrong credentials or signature",
    403: "the key lacks the permission scope, or the person is outside the key's org scope",
    404: "no such person (or not visible to this key)",
    409: "a concurrent change won; retry",
    413: "the body (or what it inflates to) is over the limit",
    415: "the body's content-type is not one this route reads",
    503: "a dependency failed; retry (nothing accepted was lost)",
}


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. invalid_request")
    message: str
    field: str | None = Field(default=None, description="dotted path of the offending field, when known")
    code: str | None = Field(default=None, description="the same code, under the name Segment SDKs read")


def body(model: Any, name: str, content_type: str = "application/json", description: str = "") -> dict[str, Any]:
    """A request body schema (a pydantic model or any type), registered under `name` in components."""
    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
    for def_name, definition in schema.pop("$defs", {}).items():
        _REQUEST_SCHEMAS[def_name] = definition
    _REQUEST_SCHEMAS[name] = schema
    media = {"schema": {"$ref": f"#/components/schemas/{name}"}}
    return {"requestBody": {"required": True, "description": description, "content": {content_type: media}}}


def raw_body(content_type: str, description: str) -> dict[str, Any]:
    """A body that is not JSON (WeChat XML): documented as a string."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {content_type: {"schema": {"type": "string"}}},
        }
    }


def query(**params: str) -> dict[str, Any]:
    """Optional string query parameters, name -> description (moved into `parameters` by the merge)."""
    return {
        _QUERY_KEY: [
            {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
            for n, d in params.items()
        ]
    }


def responses(ok: dict[int, tuple[Any, str]], errors: Iterable[int] = (400, 401, 503)) -> dict[int, Any]:
    """Powertools `responses=`: success statuses with their model (None: no body) and the error statuses."""
    out: dict[int, Any] = {}
    for status, (model, description) in ok.items():
        out[status] = {"description": description}
        if model is not None:
            out[status]["content"] = {"application/json": {"model": model}}
    for status in errors:
        out[status] = {"description": STATUS_TEXT[status], "content": {"application/json": {"model": ErrorBody}}}
    return out


def text_responses(ok: dict[int, str], errors: Iterable[int] = (400, 401, 413, 415, 503)) -> dict[int, Any]:
    out: dict[int, Any] = {
        s: {"description": d, "content": {"text/plain": {"schema": {"type": "string"}}}} for s, d in ok.items()
    }
    out.update(responses({}, errors))
    return out


SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "a per-client API key with scopes",
    },
    "writeKey": {"type": "http", "scheme": "basic", "description": "Segment-style write key as the user name"},
}


def merged_document(resolvers: Iterable[Any], title: str, version: str, description: str) -> dict[str, Any]:
    merge = OpenAPIMerge(title=title, version=version, description=description, on_conflict="error")
    for resolver in resolvers:
        merge.add_schema(resolver.get_openapi_schema())
    # plain JSON values (Powertools leaves enums such as ParameterInType in the dict)
    document: dict[str, Any] = json.loads(json.dumps(merge.get_openapi_schema(), default=_plain))
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and _QUERY_KEY in operation:
                operation.setdefault("parameters", []).extend(operation.pop(_QUERY_KEY))
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(_REQUEST_SCHEMAS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    return document


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    raise TypeError(f"cannot serialize {type(value).__name__} in the OpenAPI document")
