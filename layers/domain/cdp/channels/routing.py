"""Which sender delivers a message: the brand's account for the channel (the sources secret's `senders`), else the
stack's default, each wrapped so transient refusals are retried and the provider's rate is never exceeded.

    sms      the brand's `sms.mainland` account for +86 numbers, else its `sms.default`; else the stack's AWS End User
             Messaging origination identity
    email    the brand's SES account; else the stack's from-address and configuration set
    wechat   the brand's sending app the person's OpenID belongs to (template messages from an official account,
             subscribe messages from a mini-program)
    push     the brand's SNS platform applications
    webhook  the brand's endpoint
    inapp    the person's in-app inbox (the ledger table: `cdp.channels.inbox`); no account: the brand's app pulls it
    outbox   the S3 outbox (and, with SEND_VIA_OUTBOX, any channel the brand names no account for: the local runtime)

A channel with no account and no default is refused for good (`no_sender`): the message ends `failed`, never in a
file that looks sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdp.channels.adapters import EndUserMessagingSmsChannel, SesEmailChannel
from cdp.channels.aliyun_sms import AliyunSmsChannel
from cdp.channels.inbox import Inbox, InboxChannel
from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.channels.rate_limits import RateLimitedChannel, RateLimiter
from cdp.channels.retries import Backoff, RetryingChannel
from cdp.channels.sns_push import SnsPushChannel
from cdp.channels.webhook import WebhookChannel
from cdp.channels.wechat import WeChatChannel
from cdp.channels.wechat_tokens import AccessTokens
from cdp.connectors.sender_accounts import (
    AliyunSms,
    BrandSenders,
    EndUserMessagingSms,
    SesEmail,
    SmsAccount,
    SnsPush,
    Webhook,
    WeChatSenders,
)
from cdp.connectors.sources import SourceRegistry, WeChatApp
from cdp.errors import StoreError
from cdp.shared.http import HttpTransport, urllib_transport

CHANNELS: tuple[ChannelName, ...] = ("sms", "email", "push", "wechat", "webhook", "outbox", "inapp")
MAINLAND_PREFIX = "+86"


@dataclass(frozen=True)
class StackDefaults:
    """The stack's own senders (the send function's environment): used for brands that name no account."""

    email_from: str | None = None
    ses_configuration_set: str | None = None
    sms_origination: str | None = None
    sms_configuration_set: str | None = None
    via_outbox: bool = False  # the local runtime: channels without an account go to the S3 outbox


@dataclass
class ProviderKit:
    """How adapters are built (tests and the local runtime pass fakes' transports and moto's clients)."""

    transport: Callable[[float], HttpTransport] = urllib_transport
    clients: Mapping[str, Any] = field(default_factory=dict)  # "sesv2", "pinpoint-sms-voice-v2", "sns"
    tokens: AccessTokens | None = None  # shared WeChat access tokens
    limiter: RateLimiter | None = None
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], None] = time.sleep


class SenderDirectory:
    """Builds each account's sender once per process (warm invocations reuse its connections and token cache)."""

    def __init__(
        self,
        sources: SourceRegistry | None,
        defaults: StackDefaults,
        kit: ProviderKit,
        outbox: Channel | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self._sources = sources
        self._defaults = defaults
        self._kit = kit
        self._outbox = outbox
        # the in-app inbox needs no account; a write that failed is retried like a provider's transient refusal
        self._inbox = RetryingChannel(InboxChannel(inbox), kit.backoff, kit.sleep) if inbox is not None else None
        self._built: dict[tuple[str, ...], Channel] = {}
        self._lock = threading.Lock()

    def channels(self) -> dict[str, Channel]:
        """What the send service is given: one routed channel per channel name."""
        return {name: RoutedChannel(name, self) for name in CHANNELS}

    def sender_for(self, channel: ChannelName, message: OutboundMessage) -> Channel:
        senders = self._brand_senders(message.brand_id)
        if channel == "outbox":
            return self._require(self._outbox, channel)
        if channel == "inapp":
            return self._require(self._inbox, "in-app inbox")
        if channel == "sms":
            return self._sms(senders, message)
        if channel == "email":
            return self._email(senders)
        if channel == "wechat" and senders is not None and senders.wechat is not None:
            return self._wechat(message)
        if channel == "push" and senders is not None and senders.push is not None:
            push = senders.push
            return self._cached(("push", message.brand_id), push, lambda: self._sns_push(push))
        if channel == "webhook" and senders is not None and senders.webhook is not None:
            hook = senders.webhook
            return self._cached(("webhook", message.brand_id), hook, lambda: self._webhook(hook))
        return self._fallback(channel)

    # ---- per channel ------------------------------------------------------------------------------------------

    def _sms(self, senders: BrandSenders | None, message: OutboundMessage) -> Channel:
        if senders is None or senders.sms is None:
            if self._defaults.sms_origination and not self._defaults.via_outbox:
                default = EndUserMessagingSms(
                    origination_identity=self._defaults.sms_origination,
                    configuration_set=self._defaults.sms_configuration_set or None,
                )
                return self._account_sender(("sms", "stack"), default)
            return self._fallback("sms")
        mainland = message.address.startswith(MAINLAND_PREFIX) and senders.sms.mainland is not None
        account = senders.sms.mainland if mainland and senders.sms.mainland else senders.sms.default
        # keyed by the account that sends: one account, one rate counter
        return self._account_sender(("sms", message.brand_id, "mainland" if mainland else "default"), account)

    def _email(self, senders: BrandSenders | None) -> Channel:
        account = senders.email if senders is not None else None
        if account is None:
            if not self._defaults.email_from or self._defaults.via_outbox:
                return self._fallback("email")
            account = SesEmail(
                from_address=self._defaults.email_from,
                configuration_set=self._defaults.ses_configuration_set or None,
            )
            return self._account_sender(("email", "stack"), account)
        return self._account_sender(("email", "brand", account.from_address), account)

    def _wechat(self, message: OutboundMessage) -> Channel:
        sources = self._sources.sources() if self._sources is not None else None
        senders = sources.senders.get(message.brand_id) if sources is not None else None
        apps = senders.wechat if senders is not None else None
        app_id = next((a for a in (apps.apps if apps else ()) if a.lower() == (message.address_scope or "")), None)
        if sources is None or apps is None or app_id is None:
            raise DeliveryRejected(
                f"no sending WeChat app of brand {message.brand_id} owns the person's OpenID (app "
                f"{message.address_scope or 'unknown'})",
                code="no_sender",
                permanent=True,
            )
        app: WeChatApp = sources.wechat[app_id]
        return self._cached(("wechat", app_id), (app, apps), lambda: self._wechat_app(app_id, app, apps))

    def _fallback(self, channel: ChannelName) -> Channel:
        if self._defaults.via_outbox and self._outbox is not None:
            return self._outbox
        raise DeliveryRejected(
            f"no {channel} sender is configured for this brand (sources secret: senders.<brand>.{channel})",
            code="no_sender",
            permanent=True,
        )

    # ---- building ---------------------------------------------------------------------------------------------

    def _account_sender(self, key: tuple[str, ...], account: SmsAccount | SesEmail) -> Channel:
        return self._cached(key, account, lambda: self._build_account(account))

    def _build_account(self, account: SmsAccount | SesEmail) -> Channel:
        if isinstance(account, AliyunSms):
            return AliyunSmsChannel(account, transport=self._kit.transport(account.timeout_s))
        if isinstance(account, EndUserMessagingSms):
            return EndUserMessagingSmsChannel(
                account.origination_identity,
                client=self._kit.clients.get("pinpoint-sms-voice-v2"),
                configuration_set=account.configuration_set,
            )
        return SesEmailChannel(
            account.from_address, client=self._kit.clients.get("sesv2"), configuration_set=account.configuration_set
        )

    def _sns_push(self, account: SnsPush) -> Channel:
        return SnsPushChannel(account, client=self._kit.clients.get("sns"))

    def _webhook(self, account: Webhook) -> Channel:
        return WebhookChannel(account, transport=self._kit.transport(account.timeout_s))

    def _wechat_app(self, app_id: str, app: WeChatApp, senders: WeChatSenders) -> Channel:
        if self._kit.tokens is None:
            raise DeliveryRejected("no WeChat access token store is wired", code="no_sender", permanent=True)
        return WeChatChannel(app_id, app, senders, self._kit.tokens, transport=self._kit.transport(senders.timeout_s))

    def _cached(self, key: tuple[str, ...], account: Any, build: Callable[[], Channel]) -> Channel:
        """One sender per account (rebuilt when the secret's account changes), wrapped: retries, rate limit."""
        full = (*key, repr(account))
        with self._lock:
            found = self._built.get(full)
            if found is None:
                found = build()
                rate = getattr(account, "rate_per_second", None)
                if rate is None and isinstance(account, tuple):
                    rate = getattr(account[-1], "rate_per_second", None)
                if self._kit.limiter is not None and rate:  # every attempt, retries too, takes its place
                    found = RateLimitedChannel(found, self._kit.limiter, ":".join(key), rate, self._kit.sleep)
                found = RetryingChannel(found, self._kit.backoff, self._kit.sleep)
                self._built = {k: v for k, v in self._built.items() if k[: len(key)] != key}  # the old account's
                self._built[full] = found
            return found

    def _brand_senders(self, brand_id: str) -> BrandSenders | None:
        if self._sources is None or not brand_id:
            return None
        return self._sources.sources().senders.get(brand_id)

    @staticmethod
    def _require(channel: Channel | None, name: str) -> Channel:
        if channel is None:
            raise DeliveryRejected(f"no {name} is wired", code="no_sender", permanent=True)
        return channel


class RoutedChannel(Channel):
    def __init__(self, name: ChannelName, directory: SenderDirectory) -> None:
        self.name = name
        self._directory = directory

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        try:
            sender = self._directory.sender_for(self.name, message)
        except StoreError as exc:  # the sources secret could not be read: nothing has left
            raise DeliveryRejected(f"the brand's senders could not be read: {exc}", code="senders_unavailable") from exc
        return sender.send(message)
