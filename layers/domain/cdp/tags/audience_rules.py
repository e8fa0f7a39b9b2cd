"""An audience's membership rule: a condition in the tag rule language, plus exclusions and a consent channel.

It lives with the tags because the real-time engine evaluates dynamic audiences beside the tags (each membership is
the tag `audience:<id>`); the audience packages (`cdp.audiences`: store, validation, size, export) build on it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.tags.rules import NAME_PATTERN, AllOf, AnyOf, Compare, Condition, NotOf

ConsentRequirement = Literal["sms", "email", "push", "wechat"]


class AudienceDefinition(BaseModel):
    """(the person's brand is `brand_id`, when given) AND `include` AND NOT any(`exclude`) AND (marketing opt-in on
    `consent_channel`, when given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NAME_PATTERN, description="lower_snake_case, unique")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)
    brand_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the brand whose customers it holds (a brand's users see and define only their brand's "
        "audiences; a key limited to a brand fills it in); none: every brand's customers (unscoped keys only)",
    )
    kind: Literal["static", "dynamic"] = Field(
        description="static: frozen into snapshots on export; dynamic: membership kept current with enter/exit events"
    )
    include: Condition
    exclude: list[Condition] = Field(default_factory=list, max_length=50, description="any match leaves the audience")
    consent_channel: ConsentRequirement | None = Field(default=None, description="require marketing opt-in here")
    owner: str = Field(default="marketing", min_length=1, max_length=100)

    def condition(self) -> Condition:
        """The whole membership test as one condition tree (what both evaluators run)."""
        parts: list[Condition] = [self.include]
        if self.brand_id is not None:
            parts.insert(0, Compare.model_validate({"attr": "brand_id", "eq": self.brand_id}))
        if self.exclude:
            parts.append(NotOf.model_validate({"not": AnyOf(any=list(self.exclude))}))
        if self.consent_channel:
            parts.append(Compare.model_validate({"attr": f"consent_{self.consent_channel}", "eq": True}))
        return parts[0] if len(parts) == 1 else AllOf(all=parts)
