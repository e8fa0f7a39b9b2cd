"""Shared test set-up: fake AWS credentials and region before any client can exist (moto), quiet Powertools."""

from __future__ import annotations

import os

_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "CustomerDataPlatformTests",
    "POWERTOOLS_SERVICE_NAME": "cdp-tests",
    "POWERTOOLS_IDEMPOTENCY_DISABLED": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}
for _name, _value in _DEFAULTS.items():
    os.environ[_name] = _value
