"""PII never reaches a log line in clear: messages, extra keys and exception texts are masked."""

from __future__ import annotations

import io
import json

import pytest
from aws_lambda_powertools import Logger

from cdp.masking import mask, mask_text
from cdp.observability import MaskingFormatter, logger


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("phone:+8613800138000 merged", "13800138", "phone:"),
        ("mail li.na@example.cn bounced", "li.na", "@example.cn"),
        ("call 13911112222 now", "1391111", "2222"),
        ("wechat_openid:wx-local-oa:oABCdef123456", "oABCdef12", "wechat_openid:wx-local-oa:"),
        ("not a phone: 1391111", "1391111", "1111"),
    ],
)
def test_pii_is_masked_in_text(text: str, hidden: str, kept: str) -> None:
    masked = mask_text(text)
    assert hidden not in masked and kept in masked


def test_dates_ids_and_archive_keys_stay_readable() -> None:
    text = "raw/segment/2026/11/23/16/20261123T164359659761-req-1 at 2026-11-23 person p-123 count 42"
    assert mask_text(text) == text


def test_structured_values_are_masked_by_key_and_content() -> None:
    out = mask({"phone": "+8613900001111", "name": "Li Na", "ids": ["email:a.b@example.cn"], "count": 3})
    assert out["phone"].endswith("1111") and "139000" not in out["phone"]
    assert out["name"] != "Li Na" and out["count"] == 3
    assert "a.b@" not in out["ids"][0]


def test_log_lines_are_masked_end_to_end() -> None:
    assert isinstance(logger.registered_formatter, MaskingFormatter)  # the product's one logger masks
    stream = io.StringIO()
    probe = Logger(service="masking-test", logger_formatter=MaskingFormatter(), stream=stream)
    probe.info("resolved phone:+8613800138000", email="li.na@example.cn", person_id="p-1")
    try:
        raise ValueError("not a valid phone number 13911112222")
    except ValueError:
        probe.exception("rejected")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = json.dumps(lines)
    assert "13800138000" not in text and "li.na@" not in text and "13911112222" not in text
    assert lines[0]["person_id"] == "p-1"


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("call 138-0013-8000 now", "138-0013", "8000 now"),
        ("call 138.0013.8000 now", "138.0013", "8000 now"),
        ("call +86 138 0013 8000 now", "+86 138 0013", "call *"),
        ("store (021) 5555-1234 rang", "5555-", "1234 rang"),
        ("+1 (415) 555-2671", "555-", "2671"),
        ("us 415-555-2671.", "415-555", "2671."),  # the end of a sentence is not part of the number
        ("fr 06.12.34.56.78", "06.12.34", "6.78"),
        ("mobile:13911112222,", "1391111", "2222,"),
    ],
)
def test_phones_written_with_separators_are_masked(text: str, hidden: str, kept: str) -> None:
    # Given a phone written as people write it; When masked; Then only its last four characters remain
    masked = mask_text(text)
    assert hidden not in masked and kept in masked


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("mail 李娜@例子.中国 bounced", "李娜@", "@例子.中国"),
        ("mail josé@exämple.com bounced", "josé", "@exämple.com"),
        ("邮箱\uff1a王伟@例子.中国", "王伟@", "@例子.中国"),  # a full-width colon before it
        ("Ünïcødé.Üser+tag@example.de", "nïcødé", "@example.de"),
    ],
)
def test_non_ascii_emails_are_masked(text: str, hidden: str, kept: str) -> None:
    masked = mask_text(text)
    assert hidden not in masked and kept in masked


@pytest.mark.parametrize(
    "text",
    [
        "order total 29800 fen, 12345.67 CNY, 1234567.89 CNY",
        "at 2026-11-23 16:43:59,659+0000 and 23.11.2026 and 2026.11.23",
        "unix 1732345678 ms 1732345678901",
        "from 203.0.113.7 and 10.20.30.40 version 2.11.1",
        "order o-1234567 sku CAKE-8000123 request 6b4c0e61-1d27-4d6b-9d9e-11a0c1f0c001",
        "raw/segment/2026/11/23/16/20261123T164359659761-req-1",
        "counted 1,234,567 rows in 12 s (1.5 % rejected) person p-123",
        "row 1234 of 5678",
    ],
)
def test_ordinary_numbers_ids_and_dates_stay_readable(text: str) -> None:
    # Given log text with amounts, timestamps, dates, addresses and ids; When masked; Then nothing changes
    assert mask_text(text) == text
