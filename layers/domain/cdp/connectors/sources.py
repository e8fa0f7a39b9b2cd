"""The per-source secrets and bindings, kept as one JSON document in Secrets Manager (validated on load).

Every inbound source has its own secret (a Segment write key, a WeChat token, a Shopify app secret, an ad platform's
signing key, ...) and is bound to the brand (and, for a store system, the store) whose data it sends, so a payload
never chooses its own brand. A bad document fails with the source and field named.
"""

from __future__ import annotations

import ipaddress
import json
import re
from abc import ABC, abstractmethod
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from cdp.connectors.ad_accounts import BrandAdPlatforms
from cdp.connectors.sender_accounts import BrandSenders
from cdp.errors import CdpError

Token = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/#+\-]+$")


class SourcesConfigError(CdpError):
    """The sources document is malformed (a deployment error: every request of that source fails closed)."""


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WriteKeySource(_Cfg):
    """A Segment/RudderStack-compatible write key (HTTP Basic user name; the password is empty)."""

    brand_id: str = Token
    channel: Literal["app", "web", "mini_program", "segment"] = Field(
        default="segment", description="the canonical source of events sent with this key when the context is silent"
    )


class WeChatApp(_Cfg):
    """An official account (server callback, signed with `token`) or a mini-program (its server's relay signs with
    `secret`; WeChat's own message push, when configured, with `token`). The app id scopes OpenIDs; UnionIDs are
    shared across the brand's apps on one open platform."""

    brand_id: str = Token
    kind: Literal["official_account", "mini_program"]
    token: SecretStr | None = Field(
        default=None, description="the callback token: an official account's server URL, a mini-program's message push"
    )
    secret: SecretStr | None = Field(default=None, description="mini-program: the HMAC key its server signs with")
    encoding_aes_key: SecretStr | None = Field(
        default=None,
        description="safe mode (an official account's, or a mini-program's message push): the 43-character "
        "EncodingAESKey; plain-text pushes are then refused (the plain-text signature does not cover the body)",
    )
    app_secret: SecretStr | None = Field(
        default=None, description="the AppSecret: fetches the access token that sends template/subscribe messages"
    )

    @model_validator(mode="after")
    def _has_its_secret(self) -> WeChatApp:
        if self.kind == "official_account" and self.token is None:
            raise ValueError("an official_account needs its token")
        if self.kind == "mini_program" and self.secret is None and self.token is None:
            raise ValueError("a mini_program needs its secret (its server's relay) or token (WeChat's message push)")
        if self.encoding_aes_key is not None:
            if self.token is None:
                raise ValueError("encoding_aes_key goes with the token of the pushes it decrypts")
            if not re.fullmatch(r"[A-Za-z0-9+/]{43}", self.encoding_aes_key.get_secret_value()):
                raise ValueError("encoding_aes_key must be the 43-character EncodingAESKey from the WeChat console")
        return self


class SignedSource(_Cfg):
    """A webhook source that signs its payloads with a shared secret (Shopify, ad platforms, POS, SMS, push)."""

    brand_id: str = Token
    store_id: str | None = Field(default=None, min_length=1, max_length=128)
    secret: SecretStr = Field(description="the shared signing secret")


class SesSource(_Cfg):
    """SES event publishing through an SNS topic subscribed to our HTTPS endpoint."""

    brand_id: str = Token
    topic_arns: tuple[str, ...] = Field(min_length=1, description="only notifications from these topics are accepted")


class RedirectConfig(_Cfg):
    """Tracked links: tokens are signed with `secret` when a message is rendered and checked on every click."""

    secret: SecretStr
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="hosts a link may forward to (empty: any https host); blocks open redirects"
    )


class PlatformShop(_Cfg):
    """An e-commerce shop pulled on a schedule (Tmall/Taobao TOP API, JD open platform)."""

    brand_id: str = Token
    platform: Literal["tmall", "taobao", "jd"]
    app_key: str = Field(min_length=1)
    app_secret: SecretStr
    session: SecretStr | None = Field(default=None, description="the shop's authorised session (access token)")
    endpoint: str | None = Field(default=None, description="API gateway URL (default: the platform's public one)")


class WeChatPayApiV3(_Cfg):
    """The merchant's API v3 credentials, for WeChat Pay's cash coupons (`cdp.offers.wechat_pay_coupons`): requests
    are signed with the merchant's API private key (SHA256-RSA2048, naming its certificate's serial number) and every
    answer is checked against WeChat Pay's public key (or platform certificate) named by `wechatpay_key_id`."""

    serial_no: str = Field(
        pattern=r"^[0-9A-Fa-f]{8,40}$", description="the serial number of the merchant's API certificate"
    )
    private_key_pem: SecretStr = Field(description="the merchant's API private key (apiclient_key.pem)")
    wechatpay_key_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_]+$",
        description="WeChat Pay's public key id (PUB_KEY_ID_...) or platform certificate serial: answers name it",
    )
    wechatpay_public_key_pem: str = Field(
        min_length=1, description="WeChat Pay's public key (PEM) that signs its answers"
    )

    @model_validator(mode="after")
    def _keys_load(self) -> WeChatPayApiV3:
        # loaded now, so a bad key fails the sources document with its field named rather than the first issue
        try:
            private = load_pem_private_key(self.private_key_pem.get_secret_value().encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"private_key_pem is not an unencrypted PEM private key: {exc}") from exc
        try:
            public = load_pem_public_key(self.wechatpay_public_key_pem.encode())
        except ValueError as exc:
            raise ValueError(f"wechatpay_public_key_pem is not a PEM public key: {exc}") from exc
        if not isinstance(private, RSAPrivateKey) or not isinstance(public, RSAPublicKey):
            raise ValueError("WeChat Pay API v3 keys are RSA keys")
        return self


class WeChatPayMerchant(_Cfg):
    """The WeChat Pay merchant account that pays a brand's red packets (`cdp.offers.wechat_pay`, the v2 "sendredpack"
    API) and, with `api_v3`, issues its cash coupons (`cdp.offers.wechat_pay_coupons`). `key` is the merchant's API
    key (v2, 32 characters) that signs every v2 request; the v2 API also wants the merchant's API certificate (client
    TLS), so an https endpoint needs `cert_pem` and `key_pem`. Only a loopback http endpoint (the local fake,
    `cdp_local.fake_wechat_pay`) goes without."""

    mch_id: str = Field(pattern=r"^[0-9]{6,12}$", description="the merchant id (商户号)")
    wxappid: str = Field(
        min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$", description="the app whose OpenIDs it pays"
    )
    key: SecretStr = Field(description="the merchant's API key (v2): signs requests with MD5")
    send_name: str = Field(min_length=1, max_length=32, description="the sender shown on the red packet (商户名称)")
    client_ip: str = Field(description="the IPv4 address the calls come from, as WeChat Pay asks")
    endpoint: str = Field(default="https://api.mch.weixin.qq.com", description="the API's base URL")
    scene_id: str | None = Field(
        default=None,
        pattern=r"^PRODUCT_[1-8]$",
        description="the use case WeChat Pay requires for packets under 1.00 or over 200.00 CNY",
    )
    cert_pem: SecretStr | None = Field(default=None, description="the merchant's API certificate (PEM)")
    key_pem: SecretStr | None = Field(default=None, description="its private key (PEM)")
    timeout_s: float = Field(default=5.0, gt=0, le=20, description="per call; a call that times out is retried")
    api_v3: WeChatPayApiV3 | None = Field(
        default=None, description="API v3 credentials: needed to issue WeChat Pay cash coupons (external coupons)"
    )

    @model_validator(mode="after")
    def _reachable(self) -> WeChatPayMerchant:
        try:
            ipaddress.IPv4Address(self.client_ip)
        except ValueError as exc:
            raise ValueError(f"client_ip {self.client_ip!r} is not an IPv4 address") from exc
        parts = urlsplit(self.endpoint)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not (parts.scheme == "https" and parts.hostname) and not loopback:
            raise ValueError("endpoint must be an https URL (or a loopback http URL for the local fake)")
        if parts.scheme == "https" and (self.cert_pem is None or self.key_pem is None):
            raise ValueError("the red packet API needs the merchant's API certificate: give cert_pem and key_pem")
        if len(self.key.get_secret_value()) != 32:
            raise ValueError("key must be the merchant's 32-character API key")
        return self


class SourcesConfig(_Cfg):
    write_keys: dict[str, WriteKeySource] = Field(default_factory=dict)
    wechat: dict[str, WeChatApp] = Field(default_factory=dict, description="app id -> app")
    shopify: dict[str, SignedSource] = Field(default_factory=dict, description="shop domain -> source")
    ads: dict[str, SignedSource] = Field(default_factory=dict, description="ad platform -> source")
    pos: dict[str, SignedSource] = Field(default_factory=dict, description="POS vendor -> source")
    sms: dict[str, SignedSource] = Field(default_factory=dict, description="SMS provider -> source")
    push: dict[str, SignedSource] = Field(default_factory=dict, description="push provider -> source")
    ses: SesSource | None = None
    redirect: RedirectConfig | None = None
    shops: dict[str, PlatformShop] = Field(default_factory=dict, description="shop id -> pulled shop")
    wechat_pay: dict[str, WeChatPayMerchant] = Field(
        default_factory=dict, description="brand id -> the merchant account that pays its red packets"
    )
    senders: dict[str, BrandSenders] = Field(
        default_factory=dict, description="brand id -> the accounts that deliver its messages (per channel)"
    )
    ad_platforms: dict[str, BrandAdPlatforms] = Field(
        default_factory=dict, description="brand id -> the ad accounts its audiences are uploaded to (per platform)"
    )

    @model_validator(mode="after")
    def _senders_known(self) -> SourcesConfig:
        for brand_id, senders in self.senders.items():
            for app_id in senders.wechat.apps if senders.wechat else ():
                app = self.wechat.get(app_id)
                if app is None or app.brand_id != brand_id or app.app_secret is None:
                    raise ValueError(
                        f"senders.{brand_id}.wechat.apps: {app_id} must be one of the brand's apps in `wechat`, "
                        "with its app_secret"
                    )
        return self


def parse_sources(raw: str | bytes | dict[str, Any]) -> SourcesConfig:
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        return SourcesConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise SourcesConfigError(f"sources secret is not JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise SourcesConfigError(f"sources secret is invalid: {problems}") from exc


class SourceRegistry(ABC):
    @abstractmethod
    def sources(self) -> SourcesConfig:
        """The current document (cached; refreshed on a TTL so a rotated secret takes effect without a deploy)."""


class StaticSources(SourceRegistry):
    def __init__(self, config: SourcesConfig) -> None:
        self._config = config

    def sources(self) -> SourcesConfig:
        return self._config
