"""Request and answer models of the settings routes, the console's roles, and the key fingerprint."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from cdp.errors import CdpError
from cdp.ingest.auth import SCOPES
from cdp.org import ScopeRef

KEY_ID_LENGTH = 12
KEY_ID_PATTERN = rf"^[0-9a-f]{{{KEY_ID_LENGTH}}}$"
KEYRING_TTL_SECONDS = 300  # cdp.ingest.aws.SecretsManagerKeyring.TTL_S: how long another function may hold old keys
ID_TOKEN_SECONDS = 3600  # a console sign-in lasts this long (the pool's ID tokens, the local issuer's)

ROLES: dict[str, tuple[str, ...]] = {
    "marketer": (
        "profiles:read",
        "audiences:read",
        "audiences:write",
        "campaigns:read",
        "campaigns:write",
        "offers:read",
        "models:read",
        "analytics:read",
        "loyalty:read",
    ),
    "analyst": ("profiles:read", "audiences:read", "campaigns:read", "offers:read", "models:read", "analytics:read"),
    "operator": ("profiles:read", "profiles:write", "identity:merge", "operations:replay", "campaigns:read"),
    "admin": tuple(SCOPES),
}
"""Scopes a console role grants (`cdp console add-user --role`, `POST /v1/admin/console-users`); a user may also
name scopes one by one."""

RoleName = Literal["marketer", "analyst", "operator", "admin"]


def key_id(api_key: str) -> str:
    """What names an API key in lists, revocations and logs: the first 12 hex digits of its SHA-256 (never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:KEY_ID_LENGTH]


class SettingsConflictError(CdpError):
    """The change contradicts what is there: a user of that name exists, a caller revokes its own key (HTTP 409)."""


def _known_scope(value: str) -> str:
    if value not in SCOPES:
        raise ValueError(f"unknown scope {value[:64]!r}")
    return value


ScopeName = Annotated[str, AfterValidator(_known_scope)]


def _distinct(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKeyInfo(BaseModel):
    key_id: str = Field(description="the key's fingerprint (first 12 hex digits of its SHA-256), never the key")
    client: str = Field(description="who the key belongs to: recorded as the actor of every change it makes")
    scopes: list[str] = Field(description="permission scopes")
    scope: ScopeRef = Field(description="where in the org hierarchy it may look ({}: everywhere)")
    created_at: datetime | None = Field(default=None, description="when it was created here (unknown: made by hand)")
    created_by: str | None = Field(default=None, description="who created it here")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]
    takes_effect_within_seconds: int = Field(
        default=KEYRING_TTL_SECONDS,
        description="other functions keep the keys they read this long: a created or revoked key is in force "
        "everywhere this long after the change at the latest",
    )


class ApiKeyRequest(_Body):
    client: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$", description="who it is for")
    scopes: Annotated[list[ScopeName], AfterValidator(_distinct)] = Field(
        min_length=1, max_length=len(SCOPES), description="permission scopes (each one of SCOPES)"
    )
    scope: ScopeRef = Field(
        default_factory=ScopeRef, description="a place in the org directory, e.g. {brand_id, store_id}; {}: everywhere"
    )


class CreatedApiKey(ApiKeyInfo):
    api_key: str = Field(description="the key itself: shown in this answer only, never again")
    takes_effect_within_seconds: int = Field(
        default=KEYRING_TTL_SECONDS, description="at once in this function; in every other within this long"
    )


class RevokedApiKey(BaseModel):
    key_id: str
    client: str
    revoked: bool = True
    takes_effect_within_seconds: int = Field(
        default=KEYRING_TTL_SECONDS, description="refused at once by this function; by every other within this long"
    )


USERNAME_PATTERN = r"^[\w.@+-]{1,64}$"
Username = Annotated[str, Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)]


class ConsoleUserRequest(_Body):
    username: Username = Field(description="what the user signs in with (letters, digits, . _ @ + -)")
    name: str = Field(default="", max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="the name shown")
    role: RoleName | None = Field(default=None, description="scopes by role (see ROLES); `scopes` adds more")
    scopes: Annotated[list[ScopeName], AfterValidator(_distinct)] = Field(
        default_factory=list, max_length=len(SCOPES), description="scopes one by one (with or without a role)"
    )
    scope: ScopeRef = Field(default_factory=ScopeRef, description="where in the org the user may look ({}: everywhere)")
    locale: Literal["en", "zh"] = "en"
    password: SecretStr = Field(
        min_length=8, max_length=256, description="the first password (the user pool's policy may ask for more)"
    )

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        return value.strip()


class NewConsoleUser(BaseModel):
    """A user as a directory adds it: the role resolved into scopes."""

    model_config = ConfigDict(frozen=True)

    username: str
    name: str
    scopes: tuple[str, ...]
    scope: ScopeRef
    locale: Literal["en", "zh"]
    password: SecretStr


class ConsoleUserInfo(BaseModel):
    username: str
    name: str = ""
    locale: str | None = None
    scopes: list[str]
    scope: ScopeRef
    enabled: bool
    status: str | None = Field(default=None, description="the user pool's status (CONFIRMED, ...); locally none")
    created_at: datetime | None = None
    problem: str | None = Field(default=None, description="why the user's sign-in cannot work as stored, if it cannot")


class ConsoleUserList(BaseModel):
    users: list[ConsoleUserInfo]
    directory: Literal["cognito", "file"] = Field(description="the stack's user pool, or the local users file")


class DisabledConsoleUser(BaseModel):
    username: str
    enabled: bool = False
    sessions_end_within_seconds: int = Field(
        default=ID_TOKEN_SECONDS,
        description="the user can no longer sign in; a sign-in made before lasts at most this long",
    )


SourceKind = Literal["write_key", "wechat", "shopify", "ads", "pos", "sms", "push", "ses", "shop"]


class SourceInfo(BaseModel):
    source_id: str = Field(description="the source's key (a write key's fingerprint: a write key is itself a secret)")
    kind: SourceKind
    brand_id: str
    store_id: str | None = None
    detail: str | None = Field(default=None, description="the app kind, the write key's channel, the platform, ...")
    accepts: list[str] = Field(description="the routes it posts to (or, for a shop, that it is pulled)")
    secrets: list[str] = Field(description="which secrets it has configured (names only: values are never shown)")


class SourceList(BaseModel):
    sources: list[SourceInfo]
