"""The process environment the local runtime gives every function: the union of their variables, set once.

Values are the local physical names from `cdp.topology`. Setting them once (not per invoke) matters: Step Functions
Map runs tasks on threads, and swapping `os.environ` per call would race.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdp import topology
from cdp.ingest.auth import SCOPES, Grant
from cdp.settings import ConfigurationError
from cdp_local.console_users import LOCAL_AUDIENCE, LOCAL_ISSUER, local_issuer

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_EMAIL_FROM = "marketing@cdp.local"
LOCAL_SMS_ORIGINATION = "CDPLOCAL"  # a sender id; End User Messaging is not emulated, the send path uses the outbox
DEFAULT_API_KEY = "local-dev-key"
WEBHOOK_KEY_ID = "local-webhook"  # HMAC-signed webhooks (x-cdp-key-id + x-cdp-signature)
WEBHOOK_SECRET = "local-webhook-secret"  # noqa: S105 - a documented local-only secret
API_KEY_ENV = "CDP_API_KEY"
API_KEYS_FILE_ENV = "CDP_API_KEYS_FILE"  # a JSON file with more keys: the ApiKeys secret's document
# Profile API keys seeded locally (documented in the README): an administrator holding every scope everywhere, and a
# read-only key of one store of the packaged demo brand (it sees only that store's facts and events).
ADMIN_API_KEY = "local-admin-key"
ADMIN_API_KEY_ENV = "CDP_ADMIN_API_KEY"
STORE_API_KEY = "local-store-sh01-key"
STORE_SCOPE = {"brand_id": "demo-brand", "store_id": "sh01"}
# approves campaign versions above the brand's limits, which the client that defined them may not (four eyes)
APPROVER_API_KEY = "local-approver-key"
# Per-source secrets of the local runtime (documented in the README; never use these anywhere else).
WRITE_KEY_ENV = "CDP_WRITE_KEY"
DEFAULT_WRITE_KEY = "local-write-key"  # Segment/RudderStack SDKs: the write key (HTTP Basic user)
LOCAL_SOURCES: dict[str, object] = {
    "wechat": {
        "wx-local-oa": {"brand_id": "demo-brand", "kind": "official_account", "token": "local-wechat-token"},
        "wx-local-mp": {
            "brand_id": "demo-brand",
            "kind": "mini_program",
            "secret": "local-mini-program-secret",  # its server's relay (/v1/wechat/wx-local-mp/events)
            "token": "local-mini-program-token",  # WeChat's message push (/v1/wechat/wx-local-mp)
        },
    },
    "shopify": {"demo-brand.myshopify.com": {"brand_id": "demo-brand", "secret": "local-shopify-secret"}},
    "ads": {
        "oceanengine": {"brand_id": "demo-brand", "secret": "local-oceanengine-secret"},
        "tencent-ads": {"brand_id": "demo-brand", "secret": "local-tencent-ads-secret"},
    },
    "pos": {"demo-pos": {"brand_id": "demo-brand", "secret": "local-pos-secret"}},
    "sms": {"aliyun": {"brand_id": "demo-brand", "secret": "local-sms-secret"}},
    "push": {"jpush": {"brand_id": "demo-brand", "secret": "local-push-secret"}},
    "ses": {"brand_id": "demo-brand", "topic_arns": [f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:cdp-ses-events"]},
    "redirect": {"secret": "local-redirect-secret", "allowed_hosts": []},
    "shops": {
        "tmall-demo": {"brand_id": "demo-brand", "platform": "tmall", "app_key": "local-tmall", "app_secret": "s"},
        "jd-demo": {"brand_id": "demo-brand", "platform": "jd", "app_key": "local-jd", "app_secret": "s"},
    },
}
ALL_SCOPES = SCOPES  # the local admin key may do everything

# Process-wide settings (not per function) that make moto and Powertools behave locally.
PROCESS_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",  # else DynamoDB Streams calls 404 under moto
    "POWERTOOLS_METRICS_NAMESPACE": "CustomerDataPlatform",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines on stdout help nobody locally
    # Tmall/Taobao/JD pulls answer from the recorded API responses under events/ (there is no sandbox account)
    "PLATFORM_TRANSPORT": "recorded",
}


def function_values(log_level: str) -> dict[str, str]:
    """A local value for every variable a FunctionSpec may declare."""
    values = {
        "POWERTOOLS_SERVICE_NAME": topology.APP,
        "POWERTOOLS_LOG_LEVEL": log_level,
        topology.DATA_BUCKET_ENV: topology.DATA_BUCKET_LOCAL_NAME,
        topology.EVENT_BUS_ENV: topology.EVENT_BUS_LOCAL_NAME,
        topology.API_KEYS_SECRET_ENV: topology.API_KEYS_SECRET_LOCAL_NAME,
        topology.SOURCES_SECRET_ENV: topology.SOURCES_SECRET_LOCAL_NAME,
        topology.SMS_ORIGINATION_ENV: LOCAL_SMS_ORIGINATION,
        topology.EMAIL_FROM_ENV: LOCAL_EMAIL_FROM,
        topology.SES_CONFIGURATION_SET_ENV: "",  # moto's SES emits no events: the local fakes produce receipts
        topology.SMS_CONFIGURATION_SET_ENV: "",
        topology.DEFAULT_REGION_ENV: "CN",
        topology.TRACKED_LINK_BASE_URL_ENV: "http://127.0.0.1:8787",  # where `cdp serve` answers /r/{token}
        # moto's Athena runs no SQL: the reports run in DuckDB over the warehouse files in the local bucket
        topology.ANALYTICS_ENGINE_ENV: "duckdb",
        topology.ANALYTICS_WORKGROUP_ENV: "cdp_analytics",  # the stack's names, unused by the duckdb engine
        topology.WAREHOUSE_DATABASE_ENV: "cdp_warehouse",
        # console users signed in by `cdp serve` (cdp_local.console_users), checked as Cognito's tokens are on AWS
        topology.CONSOLE_TOKEN_ISSUER_ENV: LOCAL_ISSUER,
        topology.CONSOLE_TOKEN_AUDIENCE_ENV: LOCAL_AUDIENCE,
        topology.CONSOLE_JWKS_URL_ENV: "",  # the keys are inline (CONSOLE_JWKS): the issuer is this process
        topology.CONSOLE_USER_POOL_ENV: "",  # no user pool: the console's users are a file (CONSOLE_USERS_FILE)
    }
    outbox_env = getattr(topology, "SEND_VIA_OUTBOX_ENV", None)
    if outbox_env:  # End User Messaging SMS is not emulated by moto: every channel delivers to the S3 outbox
        values[outbox_env] = "true"
    values.update({t.env_var: t.local_name for t in topology.TABLES})
    values[topology.CAMPAIGN_MACHINE_ARN_ENV] = state_machine_arn(topology.CAMPAIGN_MACHINE)
    # moto's queue URLs have this fixed shape; `LocalRuntime` checks them against the queues it creates
    values.update({q.dlq_env: dlq_url(q) for q in topology.QUEUES if q.dlq_env})
    values.update({q.url_env: queue_url(q) for q in topology.QUEUES if q.url_env})
    return values


def state_machine_arn(machine: topology.StateMachineSpec) -> str:
    """moto's ARN for a machine created under its local name (`LocalRuntime` checks it)."""
    return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{machine.local_name}"


def dlq_url(queue: topology.QueueSpec) -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{topology.dlq_name(queue)}"


def queue_url(queue: topology.QueueSpec) -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{queue.local_name}"


def local_environment(log_level: str = "WARNING", overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """PROCESS_ENV plus the union of `FUNCTIONS[*].env`, each with its local value."""
    known = function_values(log_level)
    env = dict(PROCESS_ENV)
    for name in sorted({v for f in topology.FUNCTIONS for v in f.env}):
        if name in known:
            env[name] = known[name]
        elif not (overrides and name in overrides):
            # A variable added to topology without a local value: the function fails at cold start with a clear
            # ConfigurationError; everything else keeps working.
            log.warning("no local value for env var %s (declared in cdp.topology.FUNCTIONS)", name)
    env[topology.CONSOLE_JWKS_ENV] = local_issuer().jwks()
    env.update(overrides or {})
    return env


def configured_api_key() -> str:
    """The key the local API accepts: $CDP_API_KEY or the documented default."""
    return os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY


def configured_write_key() -> str:
    """The Segment-compatible write key the local API accepts: $CDP_WRITE_KEY or the documented default."""
    return os.environ.get(WRITE_KEY_ENV) or DEFAULT_WRITE_KEY


def local_sources(write_key: str) -> dict[str, object]:
    """The local sources secret: the write key (bound to the demo brand, channel from the SDK's context) and the
    documented local secrets of every other connector."""
    return {"write_keys": {write_key: {"brand_id": "demo-brand"}}, **LOCAL_SOURCES}


def configured_admin_key() -> str:
    """The local administrator key (every scope, no hierarchy limit): $CDP_ADMIN_API_KEY or the documented default."""
    return os.environ.get(ADMIN_API_KEY_ENV) or ADMIN_API_KEY


def seeded_api_keys(ingest_key: str, admin_key: str) -> dict[str, dict[str, object]]:
    """The `keys` of the local API-keys secret (the format `cdp.ingest.aws.SecretsManagerKeyring` reads)."""
    return {
        ingest_key: {"client": "local", "scopes": ["events:write"]},
        admin_key: {"client": "local-admin", "scopes": list(ALL_SCOPES)},
        STORE_API_KEY: {"client": "store-sh01", "scopes": ["profiles:read"], "scope": dict(STORE_SCOPE)},
        APPROVER_API_KEY: {"client": "local-approver", "scopes": ["campaigns:read", "campaigns:approve"]},
    }


class _KeyFileEntry(Grant):
    """One key of the file, checked strictly (a typo in a scope name is an error, not a key that silently can't)."""

    client: str = Field(min_length=1, max_length=128)


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: dict[str, _KeyFileEntry] = Field(default_factory=dict)
    hmac: dict[str, str] = Field(default_factory=dict)


def api_keys_document(ingest_key: str, admin_key: str, keys_file: str | None = None) -> dict[str, Any]:
    """The local ApiKeys secret: the seeded keys, plus (winning on the same key) those of `keys_file` or
    $CDP_API_KEYS_FILE. A bad file stops the start with its path and the field (never the key itself)."""
    document: dict[str, Any] = {
        "keys": seeded_api_keys(ingest_key, admin_key),
        "hmac": {WEBHOOK_KEY_ID: WEBHOOK_SECRET},
    }
    path = keys_file or os.environ.get(API_KEYS_FILE_ENV)
    if not path:
        return document
    loaded = _read_key_file(Path(path))
    document["keys"].update({k: v.model_dump(mode="json", exclude_defaults=True) for k, v in loaded.keys.items()})
    document["hmac"].update(loaded.hmac)
    return document


def _read_key_file(path: Path) -> _KeyFile:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{API_KEYS_FILE_ENV}={path}: cannot read it ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not JSON ({exc})") from exc
    try:
        return _KeyFile.model_validate(raw)
    except ValidationError as exc:
        keys = list((raw.get("keys") or {}) if isinstance(raw, dict) else {})
        problems = []
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"]]
            if len(loc) > 1 and loc[0] == "keys" and loc[1] in keys:  # name the entry, never print the key
                loc[1] = f"<key #{keys.index(loc[1]) + 1}>"
            problems.append(f"{'.'.join(loc)}: {err['msg']}")
        raise ConfigurationError(f"{path}: {'; '.join(problems)}") from exc


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ and restore the previous state afterwards (also on error)."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
