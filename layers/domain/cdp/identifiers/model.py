"""Typed identifiers and their normalization (E.164 phones, normalized e-mails, scoped platform ids)."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class IdentifierType(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    DEVICE_ID = "device_id"
    WECHAT_OPENID = "wechat_openid"
    WECHAT_UNIONID = "wechat_unionid"
    MEMBER_CARD = "member_card"
    PLATFORM_BUYER_ID = "platform_buyer_id"
    USER_ID = "user_id"  # the brand's own account id (Segment userId)
    AD_CLICK_ID = "ad_click_id"  # an ad platform's click id: ties a click to the lead form that followed it


# Identifiers whose value only means something inside a scope (an OpenID is per WeChat app, a buyer id per platform).
SCOPED_TYPES = frozenset({IdentifierType.WECHAT_OPENID, IdentifierType.PLATFORM_BUYER_ID, IdentifierType.AD_CLICK_ID})
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")
DEFAULT_PHONE_REGION = "CN"


class Identifier(BaseModel):
    """One identifier as a channel knows a person. `key` is the normalized form used for lookups."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: IdentifierType
    value: str = Field(min_length=1, max_length=256)
    scope: str | None = Field(default=None, max_length=64, description="WeChat app id, e-commerce or ad platform name")

    @field_validator("value")
    @classmethod
    def _normalize_value(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind is None:  # the type itself was invalid; that error is reported on its own
            return value
        region = (info.context or {}).get("phone_region", DEFAULT_PHONE_REGION)
        return normalize_value(kind, value.strip(), region)

    @field_validator("scope")
    @classmethod
    def _normalize_scope(cls, scope: str | None) -> str | None:
        return scope.strip().lower() if scope else None

    @model_validator(mode="after")
    def _check_scope(self) -> Identifier:
        if self.type in SCOPED_TYPES and not self.scope:
            raise ValueError(f"{self.type.value} needs a scope (the WeChat app id or the platform name)")
        if self.type not in SCOPED_TYPES and self.scope:
            raise ValueError(f"{self.type.value} takes no scope")
        return self

    @property
    def key(self) -> str:
        return f"{self.type.value}:{self.scope}:{self.value}" if self.scope else f"{self.type.value}:{self.value}"

    @classmethod
    def from_key(cls, key: str) -> Identifier:
        kind, _, rest = key.partition(":")
        if IdentifierType(kind) in SCOPED_TYPES:
            scope, _, value = rest.partition(":")
            return cls.model_construct(type=IdentifierType(kind), value=value, scope=scope)
        return cls.model_construct(type=IdentifierType(kind), value=rest, scope=None)


def normalize_value(kind: IdentifierType, value: str, phone_region: str = DEFAULT_PHONE_REGION) -> str:
    if kind is IdentifierType.PHONE:
        return normalize_phone(value, phone_region)
    if kind is IdentifierType.EMAIL:
        return normalize_email(value)
    if not _TOKEN.match(value):
        raise ValueError(f"{kind.value} must be 1-128 characters of letters, digits and _.:@+-")
    if kind is IdentifierType.DEVICE_ID:
        return value.lower()
    return value


@lru_cache(maxsize=65_536)  # the same customers come back; parsing a number or an address is the costly part
def normalize_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"not a valid phone number for region {region}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65_536)
def normalize_email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from exc
    return result.normalized.lower()
