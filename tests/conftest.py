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


def pytest_xdist_make_scheduler(config: object, log: object) -> object | None:
    """`--dist loadfile`, except that every file under tests/browser/ goes to one worker: they share one served demo
    (a package fixture), which would otherwise be built again on each worker a browser file lands on."""
    if getattr(getattr(config, "option", None), "dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowserFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/browser/"):
                return "tests/browser/"
            return str(super()._split_scope(nodeid))

    return BrowserFilesTogether(config, log)
