"""PII never reaches the logs in clear: e-mails, phone numbers and identifier values are masked in every log line
(messages, extra keys, exception texts), whatever the code that logged them."""

from __future__ import annotations

import re
from typing import Any

# identifier keys as the platform writes them (phone:+86..., email:..., wechat_openid:app:openid, ...)
_IDENTIFIER_KEY = re.compile(
    r"\b(phone|email|device_id|wechat_openid|wechat_unionid|member_card|platform_buyer_id|user_id|ad_click_id)"
    r":((?:[a-z0-9._-]+:)?)([^\s\"',;)\]}]+)"
)
_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
# 7+ digits (spaces allowed, not hyphens: dates stay readable), not part of a longer word or key
_PHONE = re.compile(r"(?<![\w./-])(\+?\d[\d ]{5,}\d)(?![\w./-])")
# values under these keys are masked whole, wherever they appear in a structured log line
PII_KEYS = frozenset(
    {"phone", "email", "name", "openid", "unionid", "phone_number", "phoneNumber", "mobile", "receiver_mobile"}
)


def _tail(value: str, keep: int = 4) -> str:
    return "*" * max(len(value) - keep, 3) + value[-keep:] if len(value) > keep else "***"


def mask_text(text: str) -> str:
    text = _IDENTIFIER_KEY.sub(lambda m: f"{m.group(1)}:{m.group(2)}{_tail(m.group(3))}", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: _tail(m.group(1)) if sum(c.isdigit() for c in m.group(1)) >= 7 else m.group(1), text)


def mask(value: Any, key: str | None = None) -> Any:
    """A copy of a log value with PII masked (dicts and lists walked; values under PII keys masked whole)."""
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v, key) for v in value]
    if isinstance(value, str):
        return _tail(value) if key in PII_KEYS else mask_text(value)
    if isinstance(value, BaseException):  # Powertools puts the exception object itself in stack_trace.value
        return mask_text(str(value))
    return value
