"""Identity resolution rules: which identifiers link, in which priority, and when an identifier is shared (a hub).

The rules define persons as a pure function of the evidence, so the result never depends on arrival order:

* every event links each allowed pair of its identifiers (an *edge*); blocked junk values link nothing;
* an identifier is a **hub** (shared: a store tablet, a family iPad, a POS card) when its edges reach more identifiers
  of a strictly higher-priority type than one person may hold (`limits`), or more than `hub_max_links` higher-priority
  identifiers in all; hubs link nobody and go to the review queue;
* persons are the connected components of the edges that touch no hub and were not disabled by an unmerge or unbind.

Each edge is stored once, on its lower-priority end (see `IdentityRules.orient`), which is also where hubs are counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp.identifiers.model import Identifier, IdentifierType

_ALL_TYPES = tuple(IdentifierType)


class IdentityRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    priority: tuple[IdentifierType, ...] = Field(
        default=(
            IdentifierType.MEMBER_CARD,
            IdentifierType.USER_ID,
            IdentifierType.PHONE,
            IdentifierType.EMAIL,
            IdentifierType.WECHAT_UNIONID,
            IdentifierType.PLATFORM_BUYER_ID,
            IdentifierType.WECHAT_OPENID,
            IdentifierType.DEVICE_ID,
            IdentifierType.AD_CLICK_ID,
        ),
        description="most trusted first; every identifier type must appear once",
    )
    limits: dict[IdentifierType, int] = Field(
        default_factory=lambda: {
            IdentifierType.MEMBER_CARD: 1,
            IdentifierType.USER_ID: 1,
            IdentifierType.PHONE: 1,
            IdentifierType.EMAIL: 1,
            IdentifierType.WECHAT_UNIONID: 1,
            IdentifierType.PLATFORM_BUYER_ID: 1,
            IdentifierType.WECHAT_OPENID: 1,
            IdentifierType.DEVICE_ID: 3,
            IdentifierType.AD_CLICK_ID: 1000,
        },
        description="at most this many identifiers of a type (per scope) per person",
    )
    links: frozenset[frozenset[IdentifierType]] | None = Field(
        default=None,
        description="type pairs that link when seen on one event; None: every pair of two different types",
    )
    hub_max_links: int = Field(default=20, ge=1, description="more higher-priority links than this: a hub")
    blocked_values: frozenset[str] = Field(
        default_factory=lambda: frozenset(
            {
                "device_id:00000000-0000-0000-0000-000000000000",
                "device_id:unknown",
                "device_id:null",
                "device_id:undefined",
                "email:test@example.com",
                "phone:+8613800000000",
                "member_card:0",
            }
        ),
        description="identifier keys that are junk and never link (test numbers, zero device ids, shared accounts)",
    )

    @field_validator("links", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if value is None:
            return None
        pairs = []
        for raw in value:  # type: ignore[attr-defined]
            pair = tuple(raw)
            if len(pair) != 2:
                raise ValueError(f"a link names exactly two identifier types, got {list(pair)}")
            pairs.append(frozenset(IdentifierType(k) for k in pair))
        return frozenset(pairs)

    @model_validator(mode="after")
    def _complete(self) -> IdentityRules:
        missing = [t.value for t in _ALL_TYPES if t not in self.priority]
        if missing or len(set(self.priority)) != len(self.priority):
            raise ValueError(f"priority must list every identifier type once; missing {missing}")
        bad = [f"{t.value}={n}" for t, n in self.limits.items() if n < 1]
        if bad:
            raise ValueError(f"limits must be at least 1: {', '.join(bad)}")
        return self

    # ---- ordering ---------------------------------------------------------------------------------------------

    def rank(self, kind: IdentifierType) -> int:
        return self.priority.index(kind)

    def order(self, key: str) -> tuple[int, str]:
        """Sort key: higher priority first, then the key itself (a total order on identifiers)."""
        return (self.rank(IdentifierType(key.partition(":")[0])), key)

    def anchor(self, keys: Iterable[str]) -> str | None:
        """The identifier an event is filed under: its highest-priority usable identifier."""
        usable = [k for k in keys if k not in self.blocked_values]
        return min(usable, key=self.order) if usable else None

    def orient(self, a: str, b: str) -> tuple[str, str]:
        """(low, high): the edge is stored on `low`, the lower-priority end."""
        return (a, b) if self.order(a) > self.order(b) else (b, a)

    # ---- linking ----------------------------------------------------------------------------------------------

    def allows(self, a: str, b: str) -> bool:
        if a == b or a in self.blocked_values or b in self.blocked_values:
            return False
        ta, tb = IdentifierType(a.partition(":")[0]), IdentifierType(b.partition(":")[0])
        if self.links is None:
            return ta is not tb
        return frozenset({ta, tb}) in self.links

    def event_edges(self, keys: Iterable[str]) -> set[tuple[str, str]]:
        """The (low, high) edges one event's identifiers make."""
        unique = sorted(set(keys))
        return {self.orient(a, b) for i, a in enumerate(unique) for b in unique[i + 1 :] if self.allows(a, b)}

    def is_hub(self, key: str, higher_neighbours: Iterable[str]) -> bool:
        """Whether `key`, linked to these higher-priority identifiers by events, is shared by several persons."""
        own_rank = self.rank(IdentifierType(key.partition(":")[0]))
        per_bucket: dict[tuple[IdentifierType, str | None], int] = {}
        total = 0
        for other in higher_neighbours:
            ident = Identifier.from_key(other)
            if self.rank(ident.type) >= own_rank:
                continue  # only strictly more trusted identifiers count: a phone with five devices is no hub
            total += 1
            bucket = (ident.type, ident.scope)
            per_bucket[bucket] = per_bucket.get(bucket, 0) + 1
            if per_bucket[bucket] > self.limits.get(ident.type, 1_000_000):
                return True
        return total > self.hub_max_links

    def over_limit(self, keys: Iterable[str]) -> list[str]:
        """Identifier types (per scope) of which a person holds more than the limit (flagged for review)."""
        counts: dict[tuple[IdentifierType, str | None], int] = {}
        for key in keys:
            ident = Identifier.from_key(key)
            bucket = (ident.type, ident.scope)
            counts[bucket] = counts.get(bucket, 0) + 1
        return sorted(
            f"{t.value}:{scope}" if scope else t.value
            for (t, scope), n in counts.items()
            if n > self.limits.get(t, 1_000_000)
        )


DEFAULT_RULES = IdentityRules()
