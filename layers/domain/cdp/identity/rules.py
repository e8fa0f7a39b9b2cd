"""Identity resolution rules: which identifiers link, in which priority, and how many of each a person may hold."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cdp.ingest.identifiers import Identifier, IdentifierType


class IdentityRules(BaseModel):
    """Deterministic linking: identifiers seen together on one event link, unless that breaks a limit.

    `limits` bound how many identifiers of a type (per scope, for scoped types) one person may hold. A link that would
    exceed a limit is refused, and the lower-priority identifier that tried to bridge two persons is quarantined
    (marked shared, e.g. a store tablet) so it never links anyone again.
    """

    priority: list[IdentifierType] = Field(
        default_factory=lambda: [
            IdentifierType.MEMBER_CARD,
            IdentifierType.PHONE,
            IdentifierType.EMAIL,
            IdentifierType.WECHAT_UNIONID,
            IdentifierType.PLATFORM_BUYER_ID,
            IdentifierType.WECHAT_OPENID,
            IdentifierType.DEVICE_ID,
        ]
    )
    limits: dict[IdentifierType, int] = Field(
        default_factory=lambda: {
            IdentifierType.MEMBER_CARD: 1,
            IdentifierType.PHONE: 1,
            IdentifierType.EMAIL: 1,
            IdentifierType.WECHAT_UNIONID: 1,
            IdentifierType.PLATFORM_BUYER_ID: 1,
            IdentifierType.WECHAT_OPENID: 1,
            IdentifierType.DEVICE_ID: 3,
        }
    )
    blocked_values: frozenset[str] = Field(
        default_factory=lambda: frozenset(
            {
                "device_id:00000000-0000-0000-0000-000000000000",
                "device_id:unknown",
                "device_id:null",
                "email:test@example.com",
            }
        ),
        description="identifier keys that are junk and never link",
    )

    def rank(self, identifier: Identifier) -> int:
        return self.priority.index(identifier.type) if identifier.type in self.priority else len(self.priority)

    def within_limits(self, keys: set[str]) -> bool:
        counts: dict[tuple[str, str | None], int] = {}
        for key in keys:
            ident = Identifier.from_key(key)
            bucket = (ident.type.value, ident.scope)
            counts[bucket] = counts.get(bucket, 0) + 1
            if counts[bucket] > self.limits.get(ident.type, 1_000_000):
                return False
        return True


DEFAULT_RULES = IdentityRules()
