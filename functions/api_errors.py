"""The JSON error answers the profile and audience APIs share: one body shape, one mapping of typed errors.

`{"error": <code>, "message": <text>, ...}`; InvalidInputError -> 400 (with `field`), AuthenticationError -> 401,
ForbiddenError -> 403, NotFoundError -> 404, RetryableError -> 503 (logged; the caller retries).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types

from cdp.errors import AuthenticationError, ForbiddenError, InvalidInputError, NotFoundError, RetryableError


def json_response(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def error_response(status: int, code: str, message: str, **extra: Any) -> Response[str]:
    return json_response(status, json.dumps({"error": code, "message": message, **extra}))


def map_common_errors(app: APIGatewayHttpResolver, logger: Logger, api_name: str) -> None:
    """Register the shared handlers; an API adds its own (409s, 422s) beside them."""

    @app.exception_handler(InvalidInputError)
    def _invalid(exc: InvalidInputError) -> Response[str]:
        return error_response(400, "invalid_request", exc.message, field=exc.location)

    @app.exception_handler(AuthenticationError)
    def _unauthorized(exc: AuthenticationError) -> Response[str]:
        return error_response(401, "unauthorized", str(exc))

    @app.exception_handler(ForbiddenError)
    def _forbidden(exc: ForbiddenError) -> Response[str]:
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(NotFoundError)
    def _not_found(exc: NotFoundError) -> Response[str]:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(RetryableError)
    def _unavailable(exc: RetryableError) -> Response[str]:
        logger.exception(f"{api_name} dependency failed")
        return error_response(503, "unavailable", "a dependency failed; retry the request")


def map_invalid_body(app: APIGatewayHttpResolver) -> None:
    """422 for a JSON body that does not validate, naming every problem with its field path (the APIs whose bodies
    `cdp.app.campaign_api.parsed_body` parses)."""
    # imported here: the APIs that share only the handlers above (ingest, profiles) need not load the campaign API
    from cdp.app.campaign_api import InvalidBodyError

    @app.exception_handler(InvalidBodyError)
    def _invalid_body(exc: InvalidBodyError) -> Response[str]:
        errors = [e.model_dump() for e in exc.errors]
        return error_response(422, "invalid_body", exc.message, field=exc.location, errors=errors)
