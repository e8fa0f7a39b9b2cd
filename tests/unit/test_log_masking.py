"""PII never reaches a log line in clear: messages, extra keys and exception texts are masked."""

from __future__ import annotations

import io
import json

import pytest
from aws_lambda_powertools import Logger

from cdp.observability import MaskingFormatter, logger
from cdp.privacy.masking import mask, mask_text


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
