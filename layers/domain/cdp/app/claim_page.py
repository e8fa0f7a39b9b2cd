"""The claim landing page (`GET` / `POST /v1/claim/{token}`, `cdp.offers.claims`): one small mobile HTML page in
Chinese and English, with its CSS inline and nothing loaded from elsewhere.

These routes are public (the signed token is the authority), so every answer is a page, never a stack trace or a
JSON error: each typed error maps to its status and a page saying what happened in both languages (400 a bad or
tampered link, 410 an expired one, 404 an offer or person gone, 409 the offer out of stock, the person's limit, the
budget spent or a red packet not paid out, 503 try again). Every value shown is HTML-escaped.
"""

# ruff: noqa: RUF001 - the Chinese text is set with full-width punctuation, as Chinese is written

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from cdp.app.pages import CONTENT_TYPE, HEADERS, Page, esc, page, sorry
from cdp.budgets.ledger import BudgetExhaustedError
from cdp.errors import ConflictError, InvalidInputError, NotFoundError, RetryableError
from cdp.observability import logger
from cdp.offers.catalog import Offer
from cdp.offers.claims import ClaimLinkExpiredError, ClaimLinks, ClaimLinksNotConfiguredError
from cdp.offers.service import (
    CouponNotGrantedError,
    PayoutPendingError,
    ProviderRefusedError,
    RedPacketNotPaidError,
)
from cdp.offers.wallet import OfferUnavailableError, WalletEntry

CHINA = ZoneInfo("Asia/Shanghai")
__all__ = ["CONTENT_TYPE", "HEADERS", "Page", "claim", "show"]


def show(links: ClaimLinks, token: str) -> Page:
    """`GET`: the offer and a claim button, or what the link already got."""

    def build() -> Page:
        view = links.view(token)
        if view.entry is not None:
            return _claimed(view.offer, view.entry, again=True)
        return page(
            200,
            "ready",
            "领取您的专属礼遇",
            "Claim your offer",
            _offer_box(view.offer)
            + f'<p class="fine">{esc(_until_text(view.claim.expires_at))}</p>'
            + '<form method="post"><button type="submit">立即领取 · Claim now</button></form>',
        )

    return _answer(build)


def claim(links: ClaimLinks, token: str) -> Page:
    """`POST`: issue it (once per link) and say what the person got."""

    def build() -> Page:
        outcome = links.claim(token)
        return _claimed(outcome.offer, outcome.result.entry, again=not outcome.result.new)

    return _answer(build)


def _answer(build: Callable[[], Page]) -> Page:
    try:
        return build()
    except ClaimLinkExpiredError:
        return sorry(
            410, "链接已过期", "This link has expired", "请联系品牌获取新的链接。Ask the brand for a new link."
        )
    except InvalidInputError:
        return sorry(400, "链接无效", "This link is not valid", "请检查链接是否完整。Check that the link is complete.")
    except NotFoundError:
        return sorry(404, "活动不存在", "This offer is no longer here", "活动可能已下线。It may have been withdrawn.")
    except ProviderRefusedError as exc:
        logger.info("a claim's provider refused it", error=exc.error_code, reason=exc.reason)
        if isinstance(exc, RedPacketNotPaidError):
            return sorry(409, "红包发放失败", "The red packet could not be sent", _not_paid(exc.reason))
        return sorry(409, "领取失败", "The coupon could not be issued", _not_granted(exc.reason))
    except OfferUnavailableError as exc:
        return sorry(409, *_UNAVAILABLE.get(exc.reason, _UNAVAILABLE["out_of_stock"]))
    except BudgetExhaustedError:
        return sorry(409, "已被领完", "All of them have been claimed", "感谢关注。Thank you for your interest.")
    except ConflictError:
        return sorry(409, "请稍后再试", "Please try again", "领取人数较多。Many people are claiming right now.")
    except PayoutPendingError as exc:
        coupon = exc.entry.kind == "coupon"
        title = ("券发放中", "Your coupon is on its way") if coupon else ("红包处理中", "Your red packet is on its way")
        return sorry(503, *title, "请稍后刷新重试。Try again in a minute.")
    except ClaimLinksNotConfiguredError:
        logger.error("claim links are not configured: the sources secret has no redirect entry")
        return sorry(503, "暂时无法领取", "Claims are unavailable", "请稍后再试。Please try again later.")
    except RetryableError:
        logger.exception("a claim page's dependency failed")
        return sorry(503, "暂时无法领取", "Claims are unavailable", "请稍后再试。Please try again later.")


_UNAVAILABLE: dict[str, tuple[str, str, str]] = {
    "retired": ("活动已结束", "This offer has ended", "感谢关注。Thank you for your interest."),
    "ended": ("活动已结束", "This offer has ended", "感谢关注。Thank you for your interest."),
    "out_of_stock": ("已被领完", "All of them have been claimed", "感谢关注。Thank you for your interest."),
    "no_codes": ("已被领完", "All of them have been claimed", "感谢关注。Thank you for your interest."),
    "person_limit": ("您已领取过", "You have claimed this already", "每人限领，请在卡包中查看。See your wallet."),
}


def _not_paid(reason: str) -> str:
    if reason == "no_openid":
        return "请先关注品牌公众号后再领取。Follow the brand's WeChat account first, then claim again."
    if reason in ("SENDNUM_LIMIT", "RCVDAMOUNT_LIMIT"):
        return "今日领取次数已达上限。You have reached today's limit of red packets."
    return "很抱歉，红包未能发出，未扣除任何额度。Sorry: nothing was sent, and nothing was used up."


def _not_granted(reason: str) -> str:
    if reason == "no_openid":
        return "请先关注品牌公众号后再领取。Follow the brand's WeChat account first, then claim again."
    if reason == "RULE_LIMIT":
        return "您已达到该券的领取上限。You have reached this coupon's limit."
    if reason == "NOT_ENOUGH":
        return "券已被领完。All of them have been claimed."
    return "很抱歉，券未能发出，未扣除任何额度。Sorry: nothing was issued, and nothing was used up."


def _claimed(offer: Offer, entry: WalletEntry, again: bool) -> Page:
    if entry.state == "failed":
        if entry.kind == "coupon":
            raise CouponNotGrantedError.of(entry)
        raise RedPacketNotPaidError.of(entry)
    title = ("您已领取过", "Already claimed") if again else ("领取成功", "Claimed")
    return page(200, "done", *title, _offer_box(offer) + _got(entry))


def _got(entry: WalletEntry) -> str:
    parts = []
    if entry.code:
        parts.append(f'<p class="label">券码 · Code</p><p class="code">{esc(entry.code)}</p>')
    if entry.kind == "red_packet":
        status = entry.payout.status if entry.payout is not None else None
        parts.append(f'<p class="fine">{_RED_PACKET.get(status or "", _RED_PACKET["not_configured"])}</p>')
    if entry.state == "issued":
        parts.append(f'<p class="fine">{esc(_until_text(entry.valid_until, "有效期至", "valid until"))}</p>')
    elif entry.state == "redeemed" and entry.kind not in ("red_packet", "points"):
        parts.append('<p class="fine">已使用 · Used</p>')
    elif entry.state == "expired":
        parts.append('<p class="fine">已过期 · Expired</p>')
    return "".join(parts)


_RED_PACKET = {
    "paid": "红包已发送至您的微信，请在微信中领取。The red packet was sent to you on WeChat: open it there.",
    "pending": "红包处理中，请稍后刷新。Your red packet is on its way: refresh in a minute.",
    # no provider for the brand: recorded, and honestly not paid out (the brand pays it some other way)
    "not_configured": "已记入您的账户，尚未以现金发放。It is in your account; it has not been paid out in cash yet.",
}


def _offer_box(offer: Offer) -> str:
    return (
        f'<div class="offer"><p class="name">{esc(offer.name)}</p><p class="value">{esc(_value_text(offer))}</p></div>'
    )


def _value_text(offer: Offer) -> str:
    if offer.coupon is not None:
        c = offer.coupon
        above = f"满{_money(c.threshold_minor, offer.currency)}" if c.threshold_minor else ""
        if c.amount_off_minor is not None:
            off = _money(c.amount_off_minor, offer.currency)
            english = f"{off} off" + (f" orders over {_money(c.threshold_minor, offer.currency)}" if above else "")
            return f"{above}减{off} · {english}"
        cap = _money(c.max_discount_minor or 0, offer.currency)
        tenths = (100 - (c.percent_off or 0)) / 10  # 20% off is 8折
        return f"{above}{tenths:g}折（最高减{cap}） · {c.percent_off}% off, up to {cap}"
    if offer.red_packet is not None:
        cash = _money(offer.red_packet.amount_minor, offer.currency)
        return f"现金红包 {cash} · {cash} cash red packet"
    if offer.points is not None:
        return f"{offer.points.points:,} 积分 · {offer.points.points:,} points"
    assert offer.gift is not None
    return f"赠品：{offer.gift.name} · Gift: {offer.gift.name}"


def _money(minor: int, currency: str) -> str:
    amount = f"{minor / 100:,.2f}"
    return f"¥{amount}" if currency == "CNY" else f"{amount} {currency}"


def _until_text(at: datetime, zh: str = "链接有效期至", en: str = "link valid until") -> str:
    local = at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    return f"{zh} {local} · {en} {local} (UTC+8)"
