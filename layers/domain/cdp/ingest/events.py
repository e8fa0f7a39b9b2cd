"""The canonical event: every channel's input becomes one of these (schema version 1).

Each event type is its own model with typed `properties`; `CanonicalEvent` is the discriminated union on
`event_type`, so a validation error names the exact field (e.g. `order_placed.properties.lines.0.quantity`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from cdp.identifiers.model import Identifier
from cdp.shared.time import to_utc

SCHEMA_VERSION = "1"

# Bounds come from what the stores can hold and what the tag engine can compute with (windows, next birthdays),
# checked per field here; the size of a whole event is checked by ingest (`MAX_EVENT_BYTES`).
EARLIEST_EVENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_BIRTHDAY = date(1900, 1, 1)
LATEST_BIRTHDAY = date(2100, 1, 1)
MAX_AMOUNT_MINOR = 10**15  # a quadrillion fen: far above any order, far below DynamoDB's 38 digits when summed
MAX_POINTS = 10**12
MAX_CONTEXT_KEYS = 32


def _event_time(value: datetime) -> datetime:
    value = to_utc(value)
    if not EARLIEST_EVENT <= value < LATEST_EVENT:
        raise ValueError(f"must be between {EARLIEST_EVENT:%Y-%m-%d} and {LATEST_EVENT:%Y-%m-%d} (UTC)")
    return value


def _birthday(value: date) -> date:
    if not EARLIEST_BIRTHDAY <= value < LATEST_BIRTHDAY:
        raise ValueError(f"must be between {EARLIEST_BIRTHDAY} and {LATEST_BIRTHDAY}")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_event_time)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. CNY")]
MinorUnits = Annotated[
    int, Field(ge=0, le=MAX_AMOUNT_MINOR, description="amount in the currency's minor units (fen, cents)")
]
SignedMinorUnits = Annotated[int, Field(ge=-MAX_AMOUNT_MINOR, le=MAX_AMOUNT_MINOR)]
Points = Annotated[int, Field(ge=-MAX_POINTS, le=MAX_POINTS)]
ContextKey = Annotated[str, Field(min_length=1, max_length=64)]
ContextValue = Annotated[str, Field(max_length=2048)]
Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/#+\-]+$")]


class SourceChannel(StrEnum):
    APP = "app"
    WEB = "web"
    MINI_PROGRAM = "mini_program"
    WECHAT_OA = "wechat_oa"
    TMALL = "tmall"
    TAOBAO = "taobao"
    JD = "jd"
    POS = "pos"
    CRM = "crm"
    ADS = "ads"
    SHOPIFY = "shopify"
    SEGMENT = "segment"  # a Segment/RudderStack SDK whose context names no app or web library
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    BATCH = "batch"
    CDP = "cdp"  # events the platform itself emits (messages it sent)


class MessageChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    PUSH = "push"
    WECHAT = "wechat"
    WEBHOOK = "webhook"
    INAPP = "inapp"  # the in-app inbox the brand's app pulls (cdp.channels.inbox)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """Properties that tolerate extra keys (channels add their own); the known ones are still typed."""

    model_config = ConfigDict(extra="allow", frozen=True)


# ---- properties per event type ----------------------------------------------------------------------------


FamilyRelation = Literal["child", "spouse", "partner", "parent", "grandparent", "sibling", "other"]


class FamilyMemberIn(_Strict):
    """A family member the person told the brand about (a child's birthday for the cake brand's reminder)."""

    relation: FamilyRelation
    name: str | None = Field(default=None, min_length=1, max_length=100)
    birthday: Annotated[date, AfterValidator(_birthday)]
    member_id: Token | None = Field(
        default=None, description="the source's id of the member (else relation and name name them)"
    )

    @property
    def key(self) -> str:
        """The same member told again updates their entry: by member id, else relation and name."""
        if self.member_id:
            return f"id:{self.member_id}"
        return f"{self.relation}:{(self.name or '').casefold()}"


class IdentifyProperties(_Open):
    name: str | None = Field(default=None, max_length=200)
    gender: Literal["female", "male", "other", "unknown"] | None = None
    birthday: Annotated[date, AfterValidator(_birthday)] | None = None
    city: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    timezone: str | None = Field(default=None, max_length=64, description="IANA name, e.g. Asia/Shanghai")
    member_level: str | None = Field(default=None, max_length=32)
    program: Token | None = Field(default=None, description="the loyalty program whose level this is")
    family: list[FamilyMemberIn] | None = Field(
        default=None, max_length=10, description="family members with their birthdays (date-relative journeys)"
    )


class PageViewProperties(_Open):
    url: str = Field(min_length=1, max_length=2048)
    title: str | None = Field(default=None, max_length=512)
    referrer: str | None = Field(default=None, max_length=2048)


class AddToCartProperties(_Open):
    sku: Token
    category: str | None = Field(default=None, max_length=100)
    quantity: int = Field(ge=1, le=10_000)
    unit_price_minor: MinorUnits
    currency: Currency


class OrderLine(_Strict):
    sku: Token
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=100)
    quantity: int = Field(ge=1, le=10_000)
    unit_price_minor: MinorUnits


class AppliedPromotionIn(_Strict):
    """A checkout promotion the order got (what `POST /v1/promotions/evaluate` answered at the till): its budget
    pool is charged when the order arrives."""

    promotion_id: Token
    discount_minor: MinorUnits = Field(default=0, description="what it took off the order's total")
    cost_minor: MinorUnits = Field(description="what it cost the brand: discount, cashback, gift cost, trade-up")


class OrderPlacedProperties(_Open):
    order_id: Token
    lines: list[OrderLine] = Field(min_length=1, max_length=500)
    total_minor: MinorUnits
    currency: Currency
    fulfilment: Literal["online", "offline"] = "online"
    coupon_id: Token | None = None
    coupon_code: Token | None = Field(default=None, description="the code of an issued coupon the order used")
    campaign_id: Token | None = None
    promotions: list[AppliedPromotionIn] = Field(
        default_factory=list, max_length=20, description="the checkout promotions the order got"
    )

    @model_validator(mode="after")
    def _total_covers_lines(self) -> OrderPlacedProperties:
        lines_total = sum(line.quantity * line.unit_price_minor for line in self.lines)
        if self.total_minor > lines_total:
            raise ValueError(f"total_minor {self.total_minor} exceeds the sum of the lines {lines_total}")
        return self


class OrderReturnedProperties(_Open):
    order_id: Token
    refund_minor: MinorUnits
    currency: Currency
    skus: list[Token] = Field(default_factory=list, max_length=500)
    reason: str | None = Field(default=None, max_length=500)


class ReviewPostedProperties(_Open):
    sku: Token
    rating: int = Field(ge=1, le=5)
    order_id: Token | None = None
    text: str | None = Field(default=None, max_length=5000)


class PointsChangedProperties(_Open):
    delta: Points = Field(description="points added (positive) or spent/expired (negative)")
    program: Token = Field(description="the loyalty program or dealer whose points these are")
    reason: Literal["purchase", "redemption", "expiry", "adjustment", "bonus", "return", "conversion"]
    balance_after: Points | None = None


class BenefitChangedProperties(_Open):
    benefit_id: Token = Field(description="e.g. free-delivery, birthday-gift, lounge-access")
    granted: bool = Field(description="true: granted; false: revoked or expired")
    program: Token | None = None


class LevelChangedProperties(_Open):
    program: Token = Field(description="the loyalty program whose level this is")
    level: str = Field(min_length=1, max_length=32)
    previous_level: str | None = Field(default=None, max_length=32)
    direction: Literal["up", "down", "kept"] = Field(description="kept: renewed at the same level")
    valid_until: UtcDatetime | None = Field(default=None, description="the level holds at least until then")


class LoyaltyExpiringProperties(_Open):
    """Points or a level about to expire: what reminder journeys trigger on."""

    program: Token
    what: Literal["points", "level"]
    points: Points | None = Field(default=None, description="what: points - how many expire")
    level: str | None = Field(default=None, max_length=32, description="what: level - the level that ends")
    expires_at: UtcDatetime


class CardBalanceChangedProperties(_Open):
    card_id: Token
    kind: Literal["stored_value", "gift_card"]
    delta_minor: SignedMinorUnits = Field(description="top-up or refund (positive) or spend (negative), in minor units")
    currency: Currency
    balance_after_minor: MinorUnits | None = None


class CouponClaimedProperties(_Open):
    coupon_id: Token
    campaign_id: Token | None = None


class CouponRedeemedProperties(_Open):
    coupon_id: Token
    order_id: Token
    discount_minor: MinorUnits
    currency: Currency
    campaign_id: Token | None = None
    code: Token | None = Field(default=None, description="the code redeemed: matched to the issued offer")


class CouponIssuedProperties(_Open):
    """An offer issued to the person's account by the platform (a coupon, a red packet, a gift)."""

    coupon_id: Token = Field(description="the offer's id")
    issue_id: str = Field(min_length=1, max_length=200)
    kind: Literal["coupon", "red_packet", "gift"]
    code: Token | None = None
    value_minor: MinorUnits | None = Field(default=None, description="its worst case for the brand")
    currency: Currency
    valid_until: UtcDatetime
    campaign_id: Token | None = None


class CouponExpiredProperties(_Open):
    coupon_id: Token
    issue_id: str = Field(min_length=1, max_length=200)
    campaign_id: Token | None = None


class MessageDeliveredProperties(_Open):
    message_id: Token
    channel: MessageChannel
    campaign_id: Token | None = None
    status: Literal["delivered", "bounced", "failed"] = "delivered"


class CampaignAssignedProperties(_Open):
    """A person's randomized group in a campaign: the record uplift models learn from (who was held out, not only
    who got the message). The campaign engine and a brand's previous tool (history import) both report it."""

    campaign_id: Token
    group: Literal["treatment", "holdout"]
    channel: MessageChannel | None = Field(default=None, description="the channel the treatment was sent on")
    run_id: Token | None = None


class MessageClickedProperties(_Open):
    message_id: Token
    channel: MessageChannel
    url: str = Field(min_length=1, max_length=2048)
    campaign_id: Token | None = None


class MessageOpenedProperties(_Open):
    message_id: Token
    channel: MessageChannel
    campaign_id: Token | None = None


class AdClickedProperties(_Open):
    platform: Token = Field(description="the ad platform, e.g. oceanengine, tencent-ads, google-ads")
    click_id: Token
    campaign_id: Token | None = None
    adgroup_id: Token | None = None
    ad_id: Token | None = None
    placement: str | None = Field(default=None, max_length=100)


class LeadSubmittedProperties(_Open):
    platform: Token
    lead_id: Token
    click_id: Token | None = None
    campaign_id: Token | None = None
    adgroup_id: Token | None = None
    ad_id: Token | None = None
    form_id: Token | None = None


class CustomProperties(_Open):
    """Any other action a channel reports (a Segment track call outside the e-commerce spec, a WeChat menu click)."""

    name: str = Field(min_length=1, max_length=200, description="the action as the channel names it")


class ConsentChangedProperties(_Open):
    channel: MessageChannel | Literal["all"]
    granted: bool
    purpose: Literal["marketing", "transactional"] = "marketing"


# ---- the envelope shared by every type ----------------------------------------------------------------------


class _EventBase(_Strict):
    schema_version: Literal["1"] = "1"
    event_id: Token = Field(description="unique per source; the same id twice is accepted once")
    source: SourceChannel
    brand_id: Token
    store_id: Token | None = None
    occurred_at: UtcDatetime
    received_at: UtcDatetime | None = Field(default=None, description="set by ingest")
    identifiers: list[Identifier] = Field(min_length=1, max_length=20)
    context: dict[ContextKey, ContextValue] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS, description="free-form channel context (ip, user agent)"
    )

    @property
    def dedupe_key(self) -> str:
        """Unique per brand: two brands' sources may number their events alike (and one brand's key must not be
        able to claim another brand's ids)."""
        return f"{self.brand_id}#{self.source.value}#{self.event_id}"

    @property
    def legacy_dedupe_key(self) -> str:
        """The key before it named the brand (person ids derive from it; erasure still finds ledger records of it)."""
        return f"{self.source.value}#{self.event_id}"


class IdentifyEvent(_EventBase):
    event_type: Literal["identify"]
    properties: IdentifyProperties = Field(default_factory=IdentifyProperties)


class PageViewEvent(_EventBase):
    event_type: Literal["page_view"]
    properties: PageViewProperties


class AddToCartEvent(_EventBase):
    event_type: Literal["add_to_cart"]
    properties: AddToCartProperties


class OrderPlacedEvent(_EventBase):
    event_type: Literal["order_placed"]
    properties: OrderPlacedProperties


class OrderReturnedEvent(_EventBase):
    event_type: Literal["order_returned"]
    properties: OrderReturnedProperties


class ReviewPostedEvent(_EventBase):
    event_type: Literal["review_posted"]
    properties: ReviewPostedProperties


class PointsChangedEvent(_EventBase):
    event_type: Literal["points_changed"]
    properties: PointsChangedProperties


class BenefitChangedEvent(_EventBase):
    event_type: Literal["benefit_changed"]
    properties: BenefitChangedProperties


class LevelChangedEvent(_EventBase):
    event_type: Literal["level_changed"]
    properties: LevelChangedProperties


class LoyaltyExpiringEvent(_EventBase):
    event_type: Literal["loyalty_expiring"]
    properties: LoyaltyExpiringProperties


class CardBalanceChangedEvent(_EventBase):
    event_type: Literal["card_balance_changed"]
    properties: CardBalanceChangedProperties


class CouponClaimedEvent(_EventBase):
    event_type: Literal["coupon_claimed"]
    properties: CouponClaimedProperties


class CouponRedeemedEvent(_EventBase):
    event_type: Literal["coupon_redeemed"]
    properties: CouponRedeemedProperties


class CouponIssuedEvent(_EventBase):
    event_type: Literal["coupon_issued"]
    properties: CouponIssuedProperties


class CouponExpiredEvent(_EventBase):
    event_type: Literal["coupon_expired"]
    properties: CouponExpiredProperties


class MessageDeliveredEvent(_EventBase):
    event_type: Literal["message_delivered"]
    properties: MessageDeliveredProperties


class CampaignAssignedEvent(_EventBase):
    event_type: Literal["campaign_assigned"]
    properties: CampaignAssignedProperties


class MessageClickedEvent(_EventBase):
    event_type: Literal["message_clicked"]
    properties: MessageClickedProperties


class MessageOpenedEvent(_EventBase):
    event_type: Literal["message_opened"]
    properties: MessageOpenedProperties


class AdClickedEvent(_EventBase):
    event_type: Literal["ad_clicked"]
    properties: AdClickedProperties


class LeadSubmittedEvent(_EventBase):
    event_type: Literal["lead_submitted"]
    properties: LeadSubmittedProperties


class CustomEvent(_EventBase):
    event_type: Literal["custom"]
    properties: CustomProperties


class ConsentChangedEvent(_EventBase):
    event_type: Literal["consent_changed"]
    properties: ConsentChangedProperties


CanonicalEvent = Annotated[
    IdentifyEvent
    | PageViewEvent
    | AddToCartEvent
    | OrderPlacedEvent
    | OrderReturnedEvent
    | ReviewPostedEvent
    | PointsChangedEvent
    | BenefitChangedEvent
    | LevelChangedEvent
    | LoyaltyExpiringEvent
    | CardBalanceChangedEvent
    | CouponClaimedEvent
    | CouponRedeemedEvent
    | CouponIssuedEvent
    | CouponExpiredEvent
    | MessageDeliveredEvent
    | CampaignAssignedEvent
    | MessageClickedEvent
    | MessageOpenedEvent
    | AdClickedEvent
    | LeadSubmittedEvent
    | CustomEvent
    | ConsentChangedEvent,
    Field(discriminator="event_type"),
]
EVENT_TYPES: tuple[str, ...] = (
    "identify",
    "page_view",
    "add_to_cart",
    "order_placed",
    "order_returned",
    "review_posted",
    "points_changed",
    "benefit_changed",
    "level_changed",
    "loyalty_expiring",
    "card_balance_changed",
    "coupon_claimed",
    "coupon_redeemed",
    "coupon_issued",
    "coupon_expired",
    "message_delivered",
    "campaign_assigned",
    "message_clicked",
    "message_opened",
    "ad_clicked",
    "lead_submitted",
    "custom",
    "consent_changed",
)

PLATFORM_EVENT_TYPES = frozenset({"coupon_issued", "coupon_expired", "level_changed", "loyalty_expiring"})
"""Types the platform itself emits as things happen in it (an offer issued to a wallet, expired; a member's level
changed by the loyalty rules); a channel may send them too (a POS that issues its own coupons, a dealer system that
keeps its own programme's levels)."""

LOYALTY_EVENT_TYPES = frozenset({"points_changed", "level_changed", "loyalty_expiring", "benefit_changed"})
"""Types that name a loyalty programme (`properties.program`): for a programme the platform keeps, only the
platform emits them (cdp.ingest.service.WriteScope refuses them from sources)."""

CORRELATION_KEYS: tuple[str, ...] = ("sku", "category", "order_id", "cart_id", "coupon_id", "campaign_id", "name")
"""Values a journey can match one event against another by (the cart's sku in the order that closes it)."""
MAX_KEY_VALUES = 20
MAX_KEY_LENGTH = 128


def correlation_keys(event: CanonicalEvent) -> dict[str, list[str]]:
    """The event's values under `CORRELATION_KEYS` (an order's lines give their skus and categories), at most
    `MAX_KEY_VALUES` each: what `profile.updated` carries so triggers filter on them and journeys match by them."""
    props = event.properties
    found: dict[str, list[str]] = {}

    def add(key: str, value: object) -> None:
        if isinstance(value, str) and value and len(value) <= MAX_KEY_LENGTH:
            values = found.setdefault(key, [])
            if value not in values and len(values) < MAX_KEY_VALUES:
                values.append(value)

    for key in CORRELATION_KEYS:
        add(key, getattr(props, key, None))
    for line in getattr(props, "lines", None) or []:
        add("sku", line.sku)
        add("category", line.category)
    for sku in getattr(props, "skus", None) or []:
        add("sku", sku)
    return found


EVENT_ADAPTER: TypeAdapter[CanonicalEvent] = TypeAdapter(CanonicalEvent)
EVENT_LIST_ADAPTER: TypeAdapter[list[CanonicalEvent]] = TypeAdapter(list[CanonicalEvent])


def parse_event(data: Any, phone_region: str = "CN") -> CanonicalEvent:
    """Validate one event (dict or JSON bytes); raises pydantic.ValidationError with field locations."""
    if isinstance(data, str | bytes):
        return EVENT_ADAPTER.validate_json(data, context={"phone_region": phone_region})
    return EVENT_ADAPTER.validate_python(data, context={"phone_region": phone_region})
