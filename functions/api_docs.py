"""The whole HTTP API's OpenAPI document: every API function's Powertools resolver, merged (served at
GET /v1/openapi.json and written by `cdp openapi`)."""

from __future__ import annotations

from functools import cache
from typing import Any

from cdp.shared.openapi import merged_document

DESCRIPTION = (
    "Ingest (canonical events and every channel connector), the 360-degree profile, identity operations, privacy, "
    "audience packages, customer analytics (cohorts, repeat purchases, lifecycle, channels, the programme against "
    "the global control group) and operations. "
    "Authentication: x-api-key with permission scopes for brand systems; each "
    "connector uses its source's own scheme (Segment write key, WeChat signature, Shopify HMAC, x-cdp-signature, "
    "SNS signatures)."
)


@cache
def openapi_document() -> dict[str, Any]:
    from functions.analytics_api.handler import app as analytics
    from functions.audience_api.handler import app as audiences
    from functions.ingest.handler import app as ingest
    from functions.operations.handler import app as operations
    from functions.profile_api.handler import app as profile

    resolvers = [ingest, profile, operations, audiences, analytics]
    return merged_document(resolvers, "cdp HTTP API", "1.0.0", DESCRIPTION)
