"""How long an SMS is and how many parts it is billed as: the send cost and the template preview.

International SMS (3GPP TS 23.038, the GSM 03.38 alphabet): a text made only of the GSM-7 basic and extension table
characters is sent in 7-bit septets, 160 in a single message, 153 per part of a concatenated one (the user data
header takes the rest); an extension character (€ [ ] { } ^ ~ \\ | and form feed) takes two septets (ESC + code) and
is never split across parts. Any other character turns the whole text into UCS-2: 70 UTF-16 code units in a single
message, 67 per part; a character outside the Basic Multilingual Plane (an emoji) is a surrogate pair, two units,
also never split.

China providers (Alibaba Cloud SMS, for numbers in mainland China) bill by characters instead: the sign name is sent
as 【sign】 before the text and counts, and every character counts one (Chinese or Latin, full or half width): 70
in one message, 67 per part beyond. An empty text is nothing to send: 0 parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
CHINA_SINGLE, CHINA_PART = 70, 67

# GSM 03.38 basic character set, by code 0x00..0x7F (0x1B is the escape to the extension table, not a character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x10-0x1F, 0x1B (ESC) left out
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)
# The extension table (each sent as ESC + code: two septets): form feed, ^ { } \ [ ~ ] | €.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsLength:
    """`characters`: code points; `units`: septets (GSM-7) or UTF-16 code units (UCS-2), or billed characters (the
    China rule); `segments`: the parts it is sent and billed as."""

    encoding: Encoding
    characters: int
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def sms_length(text: str) -> SmsLength:
    """The international rule: GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    if is_gsm7(text):
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsLength("GSM-7", len(text), sum(sizes), _parts(sizes, GSM7_SINGLE, GSM7_PART))
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsLength("UCS-2", len(text), sum(sizes), _parts(sizes, UCS2_SINGLE, UCS2_PART))


def china_sms_length(text: str, sign_name: str) -> SmsLength:
    """The China providers' rule: 【sign】 + text, every character one, 70 in one message, 67 per part beyond."""
    if not text:
        return SmsLength("UCS-2", 0, 0, 0)
    billed = f"【{sign_name}】{text}"
    count = len(billed)
    return SmsLength("UCS-2", count, count, _parts([1] * count, CHINA_SINGLE, CHINA_PART))


def _parts(sizes: list[int], single: int, per_part: int) -> int:
    """Parts of a text whose characters take `sizes` units each: one when it fits `single`, else parts of at most
    `per_part` filled in order, a character never split between two (an ESC pair, a surrogate pair)."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts
