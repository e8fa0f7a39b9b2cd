"""What an administrator may do with the deployment's settings, with the checks that keep it safe: only a caller
holding `settings:admin` with no org scope (a brand's administrator manages nothing deployment-wide), no scope granted
that the caller does not hold, every org scope one of the org directory's, no key revoked by its own holder."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cdp.access.models import (
    KEY_ID_PATTERN,
    ROLES,
    USERNAME_PATTERN,
    ApiKeyInfo,
    ApiKeyList,
    ApiKeyRequest,
    ConsoleUserInfo,
    ConsoleUserList,
    ConsoleUserRequest,
    CreatedApiKey,
    DisabledConsoleUser,
    NewConsoleUser,
    RevokedApiKey,
    SettingsConflictError,
    SourceInfo,
    SourceKind,
    SourceList,
    key_id,
)
from cdp.access.ports import KeyStore, UserDirectory
from cdp.connectors.sources import SignedSource, SourcesConfig
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.auth import SETTINGS_ADMIN_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp.shared.time import iso

CONSOLE_PREFIX = "console:"  # the client name of a signed-in console user (cdp.ingest.console_tokens)
KEY_PREFIX = "cdp_"  # marks a key made here (secret scanners and people can tell it from other strings)


def authorize_settings(client: ApiClient) -> ApiClient:
    """The caller, if it may manage settings: `settings:admin` (403 naming it otherwise) and no org scope."""
    authorize(client, SETTINGS_ADMIN_SCOPE)
    if client.org_scope != ScopeRef():
        raise ForbiddenError(
            f"settings are deployment-wide: they need a key or user with no org scope ({client.name} is limited to "
            f"{client.org_scope.label})"
        )
    return client


def check_org_scope(scope: ScopeRef, org: OrgDirectory, field: str = "scope") -> None:
    """Every part of `scope` names a place of the org directory (InvalidInputError with the part's path)."""
    parts = {"group_id": scope.group_id, "brand_id": scope.brand_id, "dealer_id": scope.dealer_id}
    parts["store_id"] = scope.store_id
    for name, value in parts.items():
        if value is not None and not value.strip():
            raise InvalidInputError(f"{name} must not be empty (leave it out to not narrow)", f"{field}.{name}")
    groups = sorted({brand.group_id for brand in org.brands.values()})
    if scope.group_id is not None and scope.group_id not in groups:
        raise InvalidInputError(
            f"unknown group {_short(scope.group_id)}; the org has {', '.join(groups)}", f"{field}.group_id"
        )
    if scope.brand_id is None:
        if scope.dealer_id is not None or scope.store_id is not None:
            raise InvalidInputError("a dealer or store scope needs its brand_id", f"{field}.brand_id")
        return
    brand = org.brands.get(scope.brand_id)
    if brand is None:
        known = ", ".join(sorted(org.brands)) or "none"
        raise InvalidInputError(f"unknown brand {_short(scope.brand_id)}; the org has {known}", f"{field}.brand_id")
    if scope.group_id is not None and brand.group_id != scope.group_id:
        raise InvalidInputError(f"brand {brand.brand_id} is in group {brand.group_id}", f"{field}.group_id")
    if scope.dealer_id is not None and scope.dealer_id not in brand.dealers:
        known = ", ".join(sorted(brand.dealers)) or "none"
        raise InvalidInputError(
            f"unknown dealer {_short(scope.dealer_id)} of brand {brand.brand_id}; it has {known}", f"{field}.dealer_id"
        )
    if scope.store_id is not None and brand.dealers:  # a brand that lists no stores cannot say which exist
        dealer = brand.dealer_of(scope.store_id)
        if dealer is None or (scope.dealer_id is not None and dealer != scope.dealer_id):
            raise InvalidInputError(
                f"unknown store {_short(scope.store_id)} of brand {brand.brand_id}"
                + (f" under dealer {scope.dealer_id}" if scope.dealer_id else ""),
                f"{field}.store_id",
            )


def _short(value: str) -> str:
    return repr(value[:64] + ("…" if len(value) > 64 else ""))


def _grantable(caller: ApiClient, scopes: list[str] | tuple[str, ...]) -> None:
    beyond = sorted(set(scopes) - caller.scopes)
    if beyond:
        raise ForbiddenError(f"{caller.name} cannot grant scopes it does not hold: {', '.join(beyond)}")


# ---- API keys -------------------------------------------------------------------------------------------------


def _info(api_key: str, entry: Any) -> ApiKeyInfo | None:
    if not isinstance(entry, dict):
        return None
    try:
        return ApiKeyInfo(
            key_id=key_id(api_key),
            client=str(entry.get("client") or "unknown"),
            scopes=sorted(str(s) for s in entry.get("scopes") or []),
            scope=ScopeRef.model_validate(entry.get("scope") or {}),
            created_at=entry.get("created_at"),
            created_by=entry.get("created_by"),
        )
    except ValidationError:  # the keyring ignores a malformed entry too (it names no key in its log)
        return None


def list_keys(store: KeyStore) -> ApiKeyList:
    """Every key by its fingerprint, client and scopes (a malformed entry, which no request can use, is left out)."""
    infos = [info for key, entry in store.entries().items() if (info := _info(key, entry)) is not None]
    return ApiKeyList(keys=sorted(infos, key=lambda i: (i.client, i.key_id)))


def create_key(
    store: KeyStore, request: ApiKeyRequest, org: OrgDirectory, caller: ApiClient, now: datetime
) -> CreatedApiKey:
    """A new random key with the request's scopes and place, stored in the secret; the answer is the only time the
    key itself is shown."""
    _grantable(caller, request.scopes)
    check_org_scope(request.scope, org)
    taken = {key_id(k) for k in store.entries()}
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    while key_id(api_key) in taken:  # fingerprints name keys: never two alike
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = {
        "client": request.client,
        "scopes": list(request.scopes),
        "scope": request.scope.model_dump(exclude_none=True),
        "created_at": iso(now),
        "created_by": caller.name,
    }

    def add(keys: dict[str, Any]) -> None:
        keys[api_key] = entry

    store.change(add)
    info = _info(api_key, entry)
    assert info is not None
    return CreatedApiKey(**info.model_dump(), api_key=api_key)


def revoke_key(store: KeyStore, wanted: str, caller_key_id: str | None) -> RevokedApiKey:
    """Remove the key whose fingerprint is `wanted` (404: none; 409: the caller's own key, or two keys share it)."""
    if wanted == caller_key_id:
        raise SettingsConflictError("a key cannot revoke itself: revoke it with another administrator's key")
    found = [(k, e) for k, e in store.entries().items() if key_id(k) == wanted] if _is_key_id(wanted) else []
    if not found:
        raise NotFoundError(f"no API key with id {_short(wanted)}")
    if len(found) > 1:
        raise SettingsConflictError(f"{len(found)} keys share the id {wanted}: remove them from the secret by hand")
    (api_key, entry), client = found[0], "unknown"
    if isinstance(entry, dict):
        client = str(entry.get("client") or "unknown")

    def remove(keys: dict[str, Any]) -> None:
        keys.pop(api_key, None)

    store.change(remove)
    return RevokedApiKey(key_id=wanted, client=client)


def _is_key_id(value: str) -> bool:
    return re.fullmatch(KEY_ID_PATTERN, value) is not None


# ---- console users -------------------------------------------------------------------------------------------


def list_users(directory: UserDirectory) -> ConsoleUserList:
    return ConsoleUserList(users=sorted(directory.users(), key=lambda u: u.username), directory=directory.kind)


def add_user(
    directory: UserDirectory, request: ConsoleUserRequest, org: OrgDirectory, caller: ApiClient
) -> ConsoleUserInfo:
    """A console user with the role's scopes plus those named, able to sign in at once with the password."""
    if request.role is None and not request.scopes:
        raise InvalidInputError("give a role or at least one scope", "role")
    scopes = tuple(sorted({*(ROLES[request.role] if request.role else ()), *request.scopes}))
    _grantable(caller, scopes)
    check_org_scope(request.scope, org)
    user = NewConsoleUser(
        username=request.username,
        name=request.name,
        scopes=scopes,
        scope=request.scope,
        locale=request.locale,
        password=request.password,
    )
    return directory.create(user)


def disable_user(directory: UserDirectory, username: str, caller: ApiClient) -> DisabledConsoleUser:
    """The user can no longer sign in (404: no such user; 409: the caller is that user)."""
    if caller.name == f"{CONSOLE_PREFIX}{username}":
        raise SettingsConflictError("a user cannot disable themselves: ask another administrator")
    if re.fullmatch(USERNAME_PATTERN, username) is None:  # no user can have this name
        raise NotFoundError(f"no console user {_short(username)}")
    directory.disable(username)
    return DisabledConsoleUser(username=username)


# ---- sources -------------------------------------------------------------------------------------------------

_SIGNED_ROUTES: dict[SourceKind, str] = {
    "shopify": "POST /v1/webhooks/shopify/{key}",
    "ads": "POST /v1/webhooks/ads/{key}",
    "pos": "POST /v1/webhooks/pos/{key}",
    "sms": "POST /v1/feedback/sms/{key}",
    "push": "POST /v1/feedback/push/{key}",
}
_SEGMENT_CALLS = ("identify", "track", "page", "screen", "alias", "group", "batch")


def _configured(model: Any, *names: str) -> list[str]:
    return [name for name in names if getattr(model, name, None) is not None]


def list_sources(config: SourcesConfig) -> SourceList:
    """Every inbound source and pulled shop: its key, brand, store and routes, and which secrets it has (names)."""
    out: list[SourceInfo] = []
    segment = [f"POST /v1/{call}" for call in _SEGMENT_CALLS]
    for write_key, source in config.write_keys.items():
        out.append(
            SourceInfo(
                source_id=key_id(write_key),
                kind="write_key",
                brand_id=source.brand_id,
                detail=source.channel,
                accepts=segment,
                secrets=["write_key"],
            )
        )
    for app_id, app in config.wechat.items():
        routes = [f"GET /v1/wechat/{app_id}", f"POST /v1/wechat/{app_id}"]
        if app.kind == "mini_program" and app.secret is not None:
            routes.append(f"POST /v1/wechat/{app_id}/events")
        found = _configured(app, "token", "secret", "encoding_aes_key", "app_secret")
        out.append(
            SourceInfo(
                source_id=app_id, kind="wechat", brand_id=app.brand_id, detail=app.kind, accepts=routes, secrets=found
            )
        )
    for kind, route in _SIGNED_ROUTES.items():
        signed: dict[str, SignedSource] = getattr(config, kind)
        for key, signer in signed.items():
            out.append(
                SourceInfo(
                    source_id=key,
                    kind=kind,
                    brand_id=signer.brand_id,
                    store_id=signer.store_id,
                    accepts=[route.replace("{key}", key)],
                    secrets=["secret"],
                )
            )
    if config.ses is not None:
        topics = len(config.ses.topic_arns)
        out.append(
            SourceInfo(
                source_id="ses",
                kind="ses",
                brand_id=config.ses.brand_id,
                detail=f"{topics} SNS topic{'s' if topics != 1 else ''}",
                accepts=["POST /v1/feedback/ses"],
                secrets=[],
            )
        )
    for shop_id, shop in config.shops.items():
        out.append(
            SourceInfo(
                source_id=shop_id,
                kind="shop",
                brand_id=shop.brand_id,
                detail=shop.platform,
                accepts=[f"pulled from {shop.platform} on the schedule"],
                secrets=_configured(shop, "app_secret", "session"),
            )
        )
    return SourceList(sources=sorted(out, key=lambda s: (s.brand_id, s.kind, s.source_id)))
