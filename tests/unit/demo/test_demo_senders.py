"""The demo's providers sign their receipts with the local sources' relay secrets (a drift would be a 401 mid-demo)."""

from __future__ import annotations

from typing import Any

from cdp_local.demo import senders
from cdp_local.runtime.environment import LOCAL_SOURCES


def test_the_receipt_relays_sign_with_the_local_sources_secrets() -> None:
    relays: Any = LOCAL_SOURCES
    assert relays["push"][senders.PUSH_RELAY]["secret"] == senders.PUSH_RELAY_SECRET
    assert relays["sms"]["aliyun"]["secret"] == senders.SMS_RELAY_SECRET
