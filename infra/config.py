"""Deploy-time settings of the stack, read from CDK context (`cdk.json` or `-c key=value`) and validated once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeployConfig(BaseModel):
    """What differs between one brand's deployment and another's; everything else comes from `cdp.topology`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    # AWS End User Messaging SMS: a phone number, sender ID, pool id or their ARN.
    sms_origination_identity: str = Field(alias="smsOriginationIdentity", min_length=1)
    # SES v2 verified identity (the address itself or its domain must be verified in the account).
    email_from_address: str = Field(alias="emailFromAddress", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    default_phone_region: str = Field(default="CN", alias="defaultPhoneRegion", pattern=r"^[A-Z]{2}$")
    # Dry run: every channel writes to the S3 outbox instead of SES/SMS (a brand's first deploy, a staging stack).
    send_via_outbox: bool = Field(default=False, alias="sendViaOutbox")
    # SES and End User Messaging SMS exist here (not in the AWS China regions): their configuration sets are created
    # and their delivery events come back; false leaves them out (brands send through their own providers).
    aws_senders: bool = Field(default=True, alias="awsSenders")
    log_level: str = Field(default="INFO", alias="logLevel", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # HTTP API stage throttling, requests/s steady state and burst: the whole API's default per route...
    api_rate_limit: int = Field(default=200, alias="apiRateLimit", gt=0)
    api_burst_limit: int = Field(default=400, alias="apiBurstLimit", gt=0)
    # ...and tighter limits on each operations route (dead letters, redrive, replay: pages of S3 and the bus)...
    admin_rate_limit: int = Field(default=5, alias="adminRateLimit", gt=0)
    admin_burst_limit: int = Field(default=10, alias="adminBurstLimit", gt=0)
    # ...and on each profile route (360 views, edits, exports, erasure: personal data, several table reads a call).
    profile_rate_limit: int = Field(default=50, alias="profileRateLimit", gt=0)
    profile_burst_limit: int = Field(default=100, alias="profileBurstLimit", gt=0)
    # ...and on tracked links (GET /r/{key}: public, a short code is looked up in the ledger table per click).
    redirect_rate_limit: int = Field(default=100, alias="redirectRateLimit", gt=0)
    redirect_burst_limit: int = Field(default=200, alias="redirectBurstLimit", gt=0)
    alarm_email: str | None = Field(default=None, alias="alarmEmail")
    # the public base URL of /r/{token} (the API's URL or a short custom domain); empty: no click tracking
    tracked_link_base_url: str = Field(default="", alias="trackedLinkBaseUrl", pattern=r"^(https://\S+)?$")

    @model_validator(mode="after")
    def _route_limits_are_tighter(self) -> DeployConfig:
        """A route limit above the stage default would loosen, not tighten: surely a typo in the context."""
        for name, rate, burst in (
            ("admin", self.admin_rate_limit, self.admin_burst_limit),
            ("profile", self.profile_rate_limit, self.profile_burst_limit),
            ("redirect", self.redirect_rate_limit, self.redirect_burst_limit),
        ):
            if rate > self.api_rate_limit or burst > self.api_burst_limit:
                raise ValueError(
                    f"{name} throttling ({rate}/s, burst {burst}) must not exceed the API default "
                    f"({self.api_rate_limit}/s, burst {self.api_burst_limit})"
                )
        return self

    @property
    def email_domain(self) -> str:
        return self.email_from_address.rsplit("@", 1)[1]

    @classmethod
    def from_context(cls, try_get_context: Callable[[str], Any]) -> DeployConfig:
        values = {
            field.alias: value
            for field in cls.model_fields.values()
            if field.alias and (value := try_get_context(field.alias)) is not None
        }
        return cls.model_validate(values)
