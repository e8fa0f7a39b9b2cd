"""Payloads of the send step: the batch request from the campaign state machine, one outbound message, the result."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from jinja2 import TemplateSyntaxError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp import topology
from cdp.budgets.ledger import PoolId
from cdp.channels.templates import compile_template
from cdp.ingest.events import Currency, MinorUnits

ChannelName = Literal["sms", "email", "push", "wechat", "webhook", "outbox", "inapp"]
Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/#+\-]+$")]
PersonId = Annotated[str, Field(min_length=1, max_length=128)]

MAX_INLINE_PERSONS = 500
DEFAULT_PRIORITY = 50  # a campaign's place in the contact policy's arbitration (1-100, higher wins)
# A message id derived from (campaign, step, person): a retried attempt reuses it, so the outbox key and the
# provider-side tags of a retry name the same message.
_MESSAGE_NAMESPACE = uuid.UUID("5b0d7c3e-3f43-4c55-9a53-0f1c9d0e5a11")


def message_id_for(campaign_id: str, step: str, person_id: str) -> str:
    return str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{campaign_id}#{step}#{person_id}"))


# A journey's send step (cdp.campaigns.journeys): `e{entry}-{place}`, with `-r{lap}` on a loop's later laps.
_JOURNEY_STEP = re.compile(r"^e\d+-(?P<place>(?:[a-z][a-z0-9_]*-)?s\d+)(?:-r\d+)?$")


def journey_place(step: str) -> str | None:
    """Where on its journey's paths a message's step is (`s1` on the main path, `reminder-s0` on a path): the step
    without its entry and lap, so every entry's messages of one step count together; None for a scheduled run's."""
    found = _JOURNEY_STEP.match(step)
    return found["place"] if found else None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageBudget(_Frozen):
    """What a campaign's messages may cost: the price of one per channel, the run's cap and, when it names one, the
    budget pool (form `message`) its messages are paid from: the run reserves their worst case there at selection and
    each send batch commits what its messages cost (`cdp.budgets.ledger.message_plan_id`)."""

    amount_minor: MinorUnits
    currency: Currency
    cost_per_message_minor: dict[ChannelName, MinorUnits] = Field(min_length=1)
    pool_id: PoolId | None = Field(default=None, description="the budget pool the run's message cost is drawn from")

    def cost_of_sent(self, by_channel: dict[str, int]) -> int:
        """What the messages sent cost, by the channel each left on."""
        return sum(n * self.cost_per_message_minor.get(name, 0) for name, n in by_channel.items())  # type: ignore[call-overload]


def _compiled(value: str) -> str:
    try:
        compile_template(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc
    return value


TemplateText = Annotated[str, Field(min_length=1, max_length=2_000), AfterValidator(_compiled)]
FieldName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class SmsProviderTemplate(_Frozen):
    """A China SMS provider sends only templates registered with it (with the brand's registered sign name): the
    template's code and each of its variables as a template of ours. `body` stays the text the person reads (its
    length and segments are what the preview shows)."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$", description="e.g. SMS_468190012")
    sign_name: str | None = Field(default=None, min_length=2, max_length=32, description="else the account's")
    params: dict[FieldName, TemplateText] = Field(default_factory=dict, max_length=20)


class WeChatMessageTemplate(_Frozen):
    """A WeChat template message (official account) or subscribe message (mini-program): the template chosen in
    the WeChat console and its fields (e.g. thing1, amount2, time3), each a template of ours; `page` opens a
    mini-program page, `url` a web page (official account only)."""

    template_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")
    fields: dict[FieldName, TemplateText] = Field(min_length=1, max_length=20)
    page: str | None = Field(default=None, min_length=1, max_length=512, description="a mini-program page path")
    url: str | None = Field(default=None, min_length=8, max_length=1024, pattern=r"^https://")


class MessageTemplate(_Frozen):
    """Jinja2 text rendered in a sandbox with strict undefined names (a typo fails loudly, never sends ''). `body`
    is what the person reads (SMS, e-mail text, push, the outbox); `sms` and `wechat` are what those providers are
    sent when they only send registered templates."""

    subject: str | None = Field(default=None, min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=20_000)
    sms: SmsProviderTemplate | None = None
    wechat: WeChatMessageTemplate | None = None
    link: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="where a tap on an in-app message leads: an https URL or the app's own deep link (inapp)",
    )

    @field_validator("subject", "body", "link")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _compiled(value)


class Offer(_Frozen):
    """What a message offers: a catalog offer issued to each recipient as the message leaves (`offer_id`: a code
    of their own, a budget hold, a coupon_issued event), or a fixed code printed as written (`coupon_id`, `code`)."""

    offer_id: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="a catalog offer (cdp offer define)"
    )
    coupon_id: Token | None = None
    code: str | None = Field(default=None, min_length=1, max_length=64, description="the code shown to the person")
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _named(self) -> Offer:
        if self.offer_id is None and self.coupon_id is None:
            raise ValueError("an offer names a catalog offer_id, or a coupon_id with its code")
        if self.offer_id is not None and self.code is not None:
            raise ValueError("a catalog offer's code is issued per person: remove `code`")
        return self

    @property
    def reference(self) -> str:
        """The id recorded on the message (the catalog offer's, else the coupon's)."""
        return self.offer_id or self.coupon_id or ""


class SendBatchRequest(_Frozen):
    """One Map iteration of the campaign state machine: one channel, one step, a batch of persons."""

    campaign_id: Token
    run_id: Token
    brand_id: Token | None = Field(default=None, description="the campaign's brand: its stop switch is checked")
    step: Token = Field(description="journey step, e.g. touch1")
    channel: ChannelName
    or_channels: list[ChannelName] = Field(
        default_factory=list, max_length=4, description="channels the person may get it on instead (preference order)"
    )
    purpose: Literal["marketing", "service"] = "marketing"
    test: bool = Field(default=False, description="a test send to seed persons: past caps, quiet hours, control group")
    priority: int = Field(
        default=DEFAULT_PRIORITY, ge=1, le=100, description="the campaign's: it yields cap room to higher ones"
    )
    held_for: Literal["quiet_hours", "rate_limit"] | None = Field(
        default=None, description="a held send ordered again: what held it (its deferral is no longer counted)"
    )
    variant: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="a journey's send: the A/B/n arm of the person (its messages are counted per arm)",
    )
    template: MessageTemplate
    offer: Offer | None = None
    budget: MessageBudget | None = Field(
        default=None, description="a campaign run's: with a pool, the batch's message cost is committed from its plan"
    )
    batch_key: str | None = Field(default=None, description="S3 key of a JSON list of person ids")
    person_ids: list[PersonId] | None = Field(default=None, max_length=MAX_INLINE_PERSONS)

    @model_validator(mode="after")
    def _check(self) -> SendBatchRequest:
        if (self.batch_key is None) == (self.person_ids is None):
            raise ValueError("give exactly one of batch_key or person_ids")
        prefix = f"{topology.CAMPAIGNS_PREFIX}{self.run_id}/batches/"
        if self.batch_key is not None and not (
            self.batch_key.startswith(prefix) and self.batch_key.endswith(".json") and ".." not in self.batch_key
        ):
            raise ValueError(f"batch_key must be a .json key under {prefix}")
        if "email" in (self.channel, *self.or_channels) and self.template.subject is None:
            raise ValueError("an email template needs a subject")
        return self


class OutboundMessage(_Frozen):
    message_id: str
    campaign_id: str
    run_id: str
    step: str
    channel: ChannelName
    person_id: str
    brand_id: str = Field(default="", description="whose senders deliver it")
    address: str = Field(description="E.164 phone, e-mail, device id, WeChat OpenID, or the person id for outbox")
    address_scope: str | None = Field(default=None, description="the WeChat app id of an OpenID")
    subject: str | None = None
    body: str
    template_ref: str | None = Field(
        default=None, description="a provider's registered template: an SMS template code, a WeChat template id"
    )
    fields: dict[str, str] = Field(
        default_factory=dict, description="that template's variables (SMS params, WeChat fields), rendered"
    )
    sign_name: str | None = Field(default=None, description="an SMS template's sign name, when not the account's")
    link: str | None = Field(default=None, description="where a tap leads: a mini-program page or a web page")
    unsubscribe_url: str | None = Field(default=None, description="the preference centre link (List-Unsubscribe)")
    purpose: Literal["marketing", "service"] = Field(
        default="marketing", description="service: an order or account notice (SMS: a transactional message type)"
    )
    coupon_id: str | None = None
    created_at: datetime


class DeliveryReceipt(_Frozen):
    message_id: str
    channel: ChannelName
    provider: str = Field(default="outbox", description="who took it: ses, end_user_messaging, aliyun, wechat, ...")
    provider_id: str = Field(description="the provider's message id (SES, SMS) or the outbox object key")
    accepted_at: datetime


class SendBatchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: str
    run_id: str
    step: str
    channel: ChannelName
    requested: int = 0
    sent: int = 0
    suppressed_no_consent: int = 0
    suppressed_no_address: int = 0
    unknown_person: int = 0
    duplicates_skipped: int = Field(
        default=0, description="already sent (or refused for good) by an earlier attempt, or twice in a batch"
    )
    in_flight_skipped: int = Field(default=0, description="another live attempt holds the send lease")
    held_stop_switch: int = Field(default=0, description="not sent: the brand's stop switch was on")
    deferred_quiet_hours: int = Field(default=0, description="held until the quiet hours where the person is end")
    deferred_rate_limit: int = Field(
        default=0, description="held for the next tick: the provider's rate would have outlasted the invocation"
    )
    suppressed_frequency_cap: int = Field(default=0, description="not sent: a frequency cap of the brand was reached")
    suppressed_priority: int = Field(
        default=0, description="not sent: the cap room left today is kept for a higher-priority campaign's run"
    )
    suppressed_global_control: int = Field(default=0, description="not sent: in the brand's global control group")
    suppressed_list: int = Field(default=0, description="not sent: on one of the brand's suppression lists")
    suppressed_offer: int = Field(
        default=0, description="not sent: the step's offer could not be issued (out of stock, limit, budget)"
    )
    failed: int = 0
    failed_for_good: int = Field(
        default=0, description="of the failed, refused for good (an invalid address, no sender): never retried"
    )
    by_channel: dict[str, int] = Field(
        default_factory=dict, description="messages sent per delivering channel (outbox when routed there)"
    )
    failed_by_channel: dict[str, int] = Field(
        default_factory=dict, description="messages failed per channel (the request's when none was chosen yet)"
    )
    failures: list[str] = Field(default_factory=list, description="first few failure reasons, for the run log")
