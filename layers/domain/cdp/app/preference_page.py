"""The preference centre's page (`GET` / `POST /v1/preferences/{token}`, `cdp.app.preference_centre`): a table of
channels with a box for marketing and one for service messages, a save button and an unsubscribe-from-all button, in
Chinese and English, built on the shell of `cdp.app.pages`.

These routes are public (the signed token is the authority), so every answer is a page, never a stack trace or a
JSON error: 400 a bad link or form, 410 an expired link, 404 a person gone, 409 a person with no identifier left to
record the change under, 503 try again.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

from cdp.app.pages import CONTENT_TYPE, HEADERS, Page, esc, page, sorry
from cdp.app.preference_centre import (
    MAX_FIELDS,
    NoIdentifierError,
    PreferenceCentre,
    Preferences,
    PreferencesNotConfiguredError,
    SavedPreferences,
)
from cdp.channels.preference_links import PreferenceLinkExpiredError
from cdp.errors import AuthenticationError, InvalidInputError, NotFoundError, RetryableError
from cdp.observability import logger

__all__ = ["CONTENT_TYPE", "HEADERS", "MAX_BODY_BYTES", "Page", "show", "submit"]
MAX_BODY_BYTES = 2048
CHANNEL_NAMES = {
    "email": ("邮件", "E-mail"),
    "sms": ("短信", "SMS"),
    "wechat": ("微信", "WeChat"),
    "push": ("App 推送", "App push"),
    "inapp": ("App 内消息", "In-app messages"),
}


def show(centre: PreferenceCentre, token: str) -> Page:
    """`GET`: the person's current choices, in a form."""
    return _answer(lambda: _form(centre.show(token), 200, "您的消息偏好", "Your message preferences", None))


def submit(centre: PreferenceCentre, token: str, body: bytes) -> Page:
    """`POST`: a saved form or a one-click unsubscribe; the page shows the choices as saved."""

    def build() -> Page:
        if len(body) > MAX_BODY_BYTES:
            raise InvalidInputError(f"the form is larger than {MAX_BODY_BYTES} bytes", "form")
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInputError("the form is not url-encoded UTF-8", "form") from exc
        return _saved(centre.submit(token, fields))

    return _answer(build)


def _saved(saved: SavedPreferences) -> Page:
    if saved.action == "one_click" or saved.action == "unsubscribe_all":
        title = ("已退订", "You are unsubscribed")
    else:
        title = ("已保存", "Saved")
    note = "我们不会再向您发送已关闭的消息。We will not send you what you turned off."
    return _form(saved.preferences, 200, *title, note)


def _form(prefs: Preferences, status: int, zh: str, en: str, note: str | None) -> Page:
    rows = []
    for choice in prefs.choices:
        name_zh, name_en = CHANNEL_NAMES[choice.channel]
        css = ' class="from"' if choice.channel == prefs.channel else ""
        rows.append(
            f"<tr{css}><td>{esc(name_zh)} · {esc(name_en)}</td>"
            + _box("marketing", choice.channel, choice.marketing, f"{name_en} offers and news")
            + _box("service", choice.channel, choice.service, f"{name_en} order and account notices")
            + "</tr>"
        )
    table = (
        '<table class="choices"><thead><tr><th>渠道 · Channel</th>'
        '<th class="box">优惠资讯<br>Offers</th><th class="box">服务通知<br>Notices</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    fine = f'<p class="fine">{esc(note)}</p>' if note else ""
    body = (
        f'<form method="post">{table}'
        '<button type="submit" name="action" value="save">保存 · Save</button>'
        '<button type="submit" name="action" value="unsubscribe_all" class="quiet">'
        "退订全部优惠资讯 · Unsubscribe from all offers</button></form>"
        f"{fine}{_NOTICES}"
    )
    return page(status, "done" if note else "ready", zh, en, body)


_NOTICES = (
    '<p class="fine">服务通知包括订单、物流与账户消息。Notices are about your orders, deliveries and account.</p>'
)


def _box(purpose: str, channel: str, checked: bool, label: str) -> str:
    on = " checked" if checked else ""
    name = f"{purpose}.{channel}"
    return f'<td class="box"><input type="checkbox" name="{esc(name)}" aria-label="{esc(label)}"{on}></td>'


def _answer(build: Callable[[], Page]) -> Page:
    try:
        return build()
    except PreferenceLinkExpiredError:
        return sorry(
            410, "链接已过期", "This link has expired", "请使用最近一条消息中的链接。Use the link in a recent message."
        )
    except AuthenticationError:
        return sorry(400, "链接无效", "This link is not valid", "请检查链接是否完整。Check that the link is complete.")
    except InvalidInputError as exc:
        logger.info("a preference form was refused", field=exc.location, error=exc.message)
        return sorry(400, "无法保存", "This could not be saved", "请刷新页面后重试。Reload the page and try again.")
    except NotFoundError:
        return sorry(404, "找不到您的资料", "We cannot find your profile", "请联系品牌客服。Please contact the brand.")
    except NoIdentifierError:
        return sorry(409, "无法在此修改", "This cannot be changed here", "请联系品牌客服。Please contact the brand.")
    except PreferencesNotConfiguredError:
        logger.error("preference links are not configured: the sources secret has no redirect entry")
        return sorry(503, "暂时无法访问", "Preferences are unavailable", "请稍后再试。Please try again later.")
    except RetryableError:
        logger.exception("a preference page's dependency failed")
        return sorry(503, "暂时无法保存", "This could not be saved now", "请稍后再试。Please try again later.")
