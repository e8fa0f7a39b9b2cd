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
# any script: \w is Unicode (李娜@例子.中国, josé@exämple.com); the local part keeps its first character
_EMAIL = re.compile(r"(?<![\w.%+-])([\w%+-])[\w.%+-]*@((?:[\w-]+\.)+\w{2,})(?![\w-])")
# a phone as people write it: an optional +country code and (area code), then 2-4 digit groups joined by one
# separator used throughout (none, space, hyphen or dot): 13800138000, 138-0013-8000, 138.0013.8000,
# +86 138 0013 8000, (021) 5555-1234. Not inside a word, an id (o-1234567), a path or a decimal (1234567.89).
_PHONE = re.compile(
    r"(?<![\w./-])((?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}([ .-]?)\d{2,4}(?:\2\d{2,4}){0,3})(?!\w|[./-]\d)"
)
# what such a shape also matches and is not a phone: dates (2026-11-23, 23.11.2026), IPv4 addresses, and plain
# unix seconds or milliseconds (10 or 13 digits starting with 1: no country's full number has that shape)
_NOT_PHONE = re.compile(
    r"\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4}|\d{1,3}(?:\.\d{1,3}){3}|1\d{9}|1\d{12}"
)
# values under these keys are masked whole, wherever they appear in a structured log line
PII_KEYS = frozenset(
    {"phone", "email", "name", "openid", "unionid", "phone_number", "phoneNumber", "mobile", "receiver_mobile"}
)


def _tail(value: str, keep: int = 4) -> str:
    return "*" * max(len(value) - keep, 3) + value[-keep:] if len(value) > keep else "***"


def mask_text(text: str) -> str:
    if ":" in text:  # cheap guards: most log text has no identifier key, no e-mail (the regexes cost more)
        text = _IDENTIFIER_KEY.sub(lambda m: f"{m.group(1)}:{m.group(2)}{_tail(m.group(3))}", text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_phone, text)


def _phone(match: re.Match[str]) -> str:
    found = match.group(1)
    digits = sum(c.isdigit() for c in found)
    if not 7 <= digits <= 15 or _NOT_PHONE.fullmatch(found):
        return found
    return _tail(found)


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
