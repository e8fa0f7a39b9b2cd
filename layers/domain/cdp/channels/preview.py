"""A message as one person would get it, before anything is sent: the template rendered with their profile, the
provider template's variables (SMS) or fields (WeChat) filled, and what an SMS costs in segments.

The offer's code is a stand-in (the real one is issued only as the message leaves), and tracked links count as the
short links an SMS carries (`{base}/r/` + 9 characters) when link tracking is on, so the length is what the person
will get. Nothing here writes anything.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cdp.channels.models import ChannelName, MessageTemplate, Offer, SendBatchRequest
from cdp.channels.preference_links import PATH as PREFERENCES_PATH
from cdp.channels.segments import china_sms_length, sms_length
from cdp.channels.service import find_address, template_context
from cdp.channels.templates import TemplateRenderError, render
from cdp.profile.models import Profile

STAND_IN_CODE = "CODE2026XY"
STAND_IN_BASE = "https://api.example.com"  # where the preference link points when no tracked-link base is set
PREFERENCE_TOKEN_CHARS = 210  # a preference link's token is about this long (brand, person, message id, signature)
SHORT_CODE_CHARS = 9
# WeChat template-message field kinds and the most characters each shows (the console's rules for subscribe
# messages; a longer value is refused): thing 20, name 10 (Chinese) / 20, phrase 5, character_string 32, ...
WECHAT_FIELD_LIMITS = {
    "thing": 20,
    "name": 20,
    "phrase": 5,
    "character_string": 32,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "amount": 12,
    "time": 32,
    "date": 32,
    "car_number": 8,
    "phone_number": 17,
}
_LINK = re.compile(r"https?://\S+")
_FIELD_KIND = re.compile(r"^([a-z_]+?)\d+$")


class SmsCost(BaseModel):
    encoding: str = Field(description="GSM-7 or UCS-2 (any character outside GSM-7 makes the whole text UCS-2)")
    characters: int
    segments: int = Field(description="what the carrier bills: 160/153 GSM-7 or 70/67 UCS-2 characters a segment")
    china_segments: int | None = Field(
        default=None, description="a China provider's count: the text with 【sign name】, 70 a message, 67 a part"
    )


class MessagePreview(BaseModel):
    channel: ChannelName
    address: str | None = Field(description="where it would go (the person's latest identifier of the channel)")
    subject: str | None = None
    body: str | None = None
    fields: dict[str, str] = Field(default_factory=dict, description="the SMS template's variables / WeChat fields")
    sms: SmsCost | None = None
    problems: list[str] = Field(
        default_factory=list, description="why it could not be sent to this person as written (render, length)"
    )


def preview(
    template: MessageTemplate,
    channel: ChannelName,
    profile: Profile,
    now: datetime,
    offer: Offer | None = None,
    link_base: str | None = None,
    sign_name: str | None = None,
) -> MessagePreview:
    request = SendBatchRequest(
        campaign_id="preview",
        run_id="preview",
        step="preview",
        channel=channel,
        template=template,
        offer=offer,
        person_ids=[profile.person_id],
    )
    context = template_context(profile, request, now.date())
    context["preferences_url"] = (
        f"{(link_base or STAND_IN_BASE).rstrip('/')}{PREFERENCES_PATH}{'P' * PREFERENCE_TOKEN_CHARS}"
    )
    if offer is not None:
        context["offer"] = {**(context["offer"] or {}), "code": offer.code or STAND_IN_CODE}
    address = find_address(profile, channel)
    out = MessagePreview(channel=channel, address=address.value if address else None)
    problems: list[str] = []
    out.subject = _render("subject", template.subject, context, problems)
    out.body = _render("body", template.body, context, problems)
    sources: dict[str, str] = {}
    if channel == "sms" and template.sms is not None:
        sources = dict(template.sms.params)
    if channel == "wechat" and template.wechat is not None:
        sources = dict(template.wechat.fields)
    for name, source in sources.items():
        value = _render(name, source, context, problems)
        if value is not None:
            out.fields[name] = value
            if channel == "wechat":
                problems += _wechat_field_problem(name, value)
    if channel == "sms" and out.body is not None:
        text = _short_links(out.body, link_base)
        china = china_sms_length(text, sign_name or (template.sms.sign_name if template.sms else None) or "")
        length = sms_length(text)
        out.sms = SmsCost(
            encoding=length.encoding,
            characters=length.characters,
            segments=length.segments,
            china_segments=china.segments if (sign_name or template.sms) else None,
        )
    out.problems = problems
    return out


def _render(name: str, source: str | None, context: dict[str, Any], problems: list[str]) -> str | None:
    if source is None:
        return None
    try:
        return render(source, context)
    except TemplateRenderError as exc:
        problems.append(f"{name}: {exc.message}")
        return None


def _short_links(text: str, link_base: str | None) -> str:
    """Each link as the SMS will carry it: `{base}/r/{9 characters}` when links are tracked."""
    if not link_base:
        return text
    short = f"{link_base.rstrip('/')}/r/" + "x" * SHORT_CODE_CHARS
    return _LINK.sub(short, text)


def _wechat_field_problem(name: str, value: str) -> list[str]:
    kind = _FIELD_KIND.match(name)
    limit = WECHAT_FIELD_LIMITS.get(kind.group(1)) if kind else None
    if limit is not None and len(value) > limit:
        return [
            f"{name}: {len(value)} characters; a WeChat {kind.group(1) if kind else ''} field shows at most {limit}"
        ]
    return []
