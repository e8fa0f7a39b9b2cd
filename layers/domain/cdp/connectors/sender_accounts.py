"""The brand's accounts at the providers that deliver its messages, kept in the sources secret under `senders`
(brand id -> `BrandSenders`): credentials, which provider sends which channel, and each provider's rate limit.

A channel the brand names no sender for uses the stack's defaults (SES v2 for e-mail, AWS End User Messaging for
SMS, from the function's environment), or, for WeChat, push and webhooks, is not sent (`no_sender`). Every limit is
the provider's agreed sending rate: the send path never exceeds it across concurrent invocations.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def https_or_loopback(url: str) -> str:
    """A provider's URL: https, or plain http on the loopback only (the local fakes)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url.rstrip("/")
    raise ValueError(f"{url!r} must be an https URL (or a loopback http URL for a local fake)")


ProviderUrl = Annotated[str, Field(min_length=8, max_length=512), AfterValidator(https_or_loopback)]
Rate = Annotated[float, Field(gt=0, le=100_000, description="messages per second at most, across all senders")]


class _Account(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=5.0, gt=0, le=20, description="per call")


class AliyunSms(_Account):
    """Alibaba Cloud SMS (dysmsapi `SendSms`, RPC signature v1): registered sign name + template per message."""

    provider: Literal["aliyun"] = "aliyun"
    access_key_id: str = Field(min_length=1, max_length=128)
    access_key_secret: SecretStr
    sign_name: str = Field(min_length=2, max_length=32, description="the registered sign name (签名)")
    endpoint: ProviderUrl = "https://dysmsapi.aliyuncs.com"
    region_id: str = Field(default="cn-hangzhou", pattern=r"^[a-z0-9-]{2,32}$")
    rate_per_second: Rate = 100.0


class EndUserMessagingSms(_Account):
    """AWS End User Messaging SMS (`pinpoint-sms-voice-v2` SendTextMessage)."""

    provider: Literal["end_user_messaging"] = "end_user_messaging"
    origination_identity: str = Field(min_length=1, max_length=256, description="a phone number, pool or sender id")
    configuration_set: str | None = Field(default=None, min_length=1, max_length=64)
    rate_per_second: Rate = 20.0


SmsAccount = Annotated[AliyunSms | EndUserMessagingSms, Field(discriminator="provider")]


class SmsSenders(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: SmsAccount
    mainland: SmsAccount | None = Field(
        default=None, description="numbers in mainland China (+86) go here (a China provider with the sign name)"
    )


class SesEmail(_Account):
    provider: Literal["ses"] = "ses"
    from_address: str = Field(min_length=3, max_length=320)
    configuration_set: str | None = Field(default=None, min_length=1, max_length=64)
    rate_per_second: Rate = 14.0


class WeChatSenders(_Account):
    """The brand's WeChat apps that send (each in the sources' `wechat` section with its `app_secret`): an official
    account sends template messages, a mini-program subscribe messages, each to its own OpenIDs."""

    provider: Literal["wechat"] = "wechat"
    apps: tuple[str, ...] = Field(min_length=1, max_length=8)
    endpoint: ProviderUrl = "https://api.weixin.qq.com"
    rate_per_second: Rate = 50.0


class SnsPush(_Account):
    """Amazon SNS mobile push: a platform application per app platform (APNs, FCM); device tokens from the profile."""

    provider: Literal["sns"] = "sns"
    platform_applications: dict[Literal["ios", "android"], str] = Field(min_length=1)
    default_platform: Literal["ios", "android"] = Field(
        default="android", description="the platform of a device whose profile does not say"
    )
    rate_per_second: Rate = 100.0

    @model_validator(mode="after")
    def _arns(self) -> SnsPush:
        for platform, arn in self.platform_applications.items():
            if not arn.startswith("arn:aws") or ":app/" not in arn:
                raise ValueError(f"platform_applications.{platform} is not a platform application ARN")
        if self.default_platform not in self.platform_applications:
            raise ValueError(f"default_platform {self.default_platform} has no platform application")
        return self


class Webhook(_Account):
    """A signed POST to the brand's endpoint (`X-Cdp-Signature: t=..,v1=hex(HMAC-SHA256(secret, t.body))`)."""

    provider: Literal["webhook"] = "webhook"
    url: ProviderUrl
    secret: SecretStr = Field(description="at least 32 characters")
    rate_per_second: Rate = 50.0

    @model_validator(mode="after")
    def _strong(self) -> Webhook:
        if len(self.secret.get_secret_value()) < 32:
            raise ValueError("secret must be at least 32 characters")
        return self


class BrandSenders(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sms: SmsSenders | None = None
    email: SesEmail | None = None
    wechat: WeChatSenders | None = None
    push: SnsPush | None = None
    webhook: Webhook | None = None
