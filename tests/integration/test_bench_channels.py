"""The channels benchmark at a small size and a low rate (10/s, so the rate limiter binds): every channel's messages
reach their loopback provider without a second of the clock above the rate, the send path is priced item by item,
the receipts move the messages in the message log, and each e-mail's one-click unsubscribe moves it to `unsubscribed`
and withdraws its person's e-mail consent (the figures themselves: `cdp bench --suite channels`)."""

from __future__ import annotations

import math

import pytest

from cdp_local.bench_channels import CHANNELS, channels_benchmark

pytestmark = pytest.mark.xdist_group("runtime")

MESSAGES, RATE = 20, 10.0


@pytest.fixture(scope="module")
def value() -> dict[str, float]:
    results = channels_benchmark(messages=MESSAGES, rate=RATE)
    return {name: float(metric["value"]) for name, metric in results.items()}


@pytest.mark.parametrize("channel", CHANNELS)
def test_each_channel_reaches_its_provider_at_its_rate(value: dict[str, float], channel: str) -> None:
    # Given 20 messages at 10/s: the limiter gave out 10 places a window at most, so the provider got no more than 10
    # in a second of the clock (one more at most: a place taken in a window's last millisecond can arrive in the next
    # second) and they took at least two seconds; a window's worth at most came either side of a window's end
    assert value[f"channels.{channel}.limiter_max_per_window"] <= RATE
    assert value[f"channels.{channel}.max_per_second"] <= RATE + 1
    assert value[f"channels.{channel}.seconds_used"] >= math.ceil(MESSAGES / RATE)
    assert RATE <= value[f"channels.{channel}.max_in_sliding_second"] <= 2 * RATE
    assert value[f"channels.{channel}.messages_per_s"] > 0


@pytest.mark.parametrize("channel", CHANNELS)
def test_each_send_is_priced_by_the_items_it_writes(value: dict[str, float], channel: str) -> None:
    per_item = f"channels.{channel}.wru_per_send_by_item"
    # the ledger's claim and mark_sent, the contact history under demo-brand's caps, the profile's message record
    assert value[f"{per_item}.ledger"] == 2
    assert value[f"{per_item}.contact_history"] == 1
    assert value[f"{per_item}.profile_message"] == 1
    # the message log: the message, and for WeChat the pointer from the msgid its pushes name (both MESSAGE items)
    assert value[f"{per_item}.message_log"] == (2 if channel == "wechat" else 1)
    # at 10/s the limiter takes one place per write (a twentieth of the rate, at least one)
    assert 1 <= value[f"{per_item}.rate_limiter"] <= 1.2
    assert value[f"channels.{channel}.cost_per_1m_sends_usd"] > 0
    assert value[f"channels.{channel}.aws_calls_per_send"] >= 5


def test_the_sms_pays_for_its_short_links_and_ses_is_the_providers_own_call(value: dict[str, float]) -> None:
    # the README's template names the link in the text and as a variable: one short link, stored once
    assert value["channels.sms.wru_per_send_by_item.short_links"] == 1
    assert value["channels.sms.cost_per_1m_sends_usd"] > value["channels.webhook.cost_per_1m_sends_usd"]
    assert value["channels.email.provider_aws_calls_per_send"] == 1
    # the same path, but an e-mail's batch also reads its addresses among the dead ones (a webhook has none): 1 call
    extra = value["channels.email.aws_calls_per_send"] - value["channels.webhook.aws_calls_per_send"]
    assert 0 < extra <= 1 / MESSAGES + 1e-9
    low, high = (
        min(value[f"channels.{c}.cost_per_1m_sends_usd"] for c in CHANNELS),
        max(value[f"channels.{c}.cost_per_1m_sends_usd"] for c in CHANNELS),
    )
    assert low <= value["channels.cost_per_1m_sends_usd"] <= high


@pytest.mark.parametrize(("channel", "failure"), [("sms", "failed"), ("email", "bounced")])
def test_receipts_move_every_message_and_are_priced(value: dict[str, float], channel: str, failure: str) -> None:
    # 1 receipt in 20 reports a failure: every message moved from sent to what its receipt said
    assert value[f"channels.{channel}.receipts_moved"] == MESSAGES
    assert value[f"channels.{channel}.after_receipts.delivered"] == MESSAGES - 1
    assert value[f"channels.{channel}.after_receipts.{failure}"] == 1
    assert value[f"channels.{channel}.after_receipts.sent"] == 0
    assert value[f"channels.{channel}.cost_per_1m_receipts_usd"] > 0
    assert value[f"channels.{channel}.billed_wru_per_receipt"] >= 1  # the message log's conditional update
    assert value[f"channels.{channel}.cost_per_1m_receipts.by_function.message_receipts.usd"] > 0
    assert value["channels.cost_per_1m_receipts_usd"] > 0


def test_wechat_template_job_pushes_move_every_message(value: dict[str, float]) -> None:
    assert value["channels.wechat.receipts_moved"] == MESSAGES
    assert value["channels.wechat.after_receipts.delivered"] == MESSAGES - 1
    assert value["channels.wechat.after_receipts.failed"] == 1


def test_each_one_click_unsubscribe_moves_its_email_and_withdraws_consent(value: dict[str, float]) -> None:
    # Given every e-mail of the step unsubscribed through the List-Unsubscribe URL it carried (one request each)
    assert value["channels.email.preference_changes"] == MESSAGES
    # Then every message ends unsubscribed, whatever its receipt said (delivered, or bounced), and every person's
    # e-mail marketing consent is withdrawn in their profile
    assert value["channels.email.after_preference_changes.unsubscribed"] == MESSAGES
    for status in ("delivered", "bounced", "sent"):
        assert value[f"channels.email.after_preference_changes.{status}"] == 0
    assert value["channels.email.email_consent_withdrawn"] == MESSAGES
    # And each change is priced: its HTTP API request, the archive, the dedupe and the bus in the preference centre,
    # and the profile and the message log downstream
    assert value["channels.cost_per_1m_preference_changes_usd"] > 0
    calls = "channels.calls_per_preference_change"
    assert value[f"{calls}.apigateway.HttpApiRequest"] == 1
    assert value[f"{calls}.s3.PutObject"] == 1
    assert value[f"{calls}.events.PutEvents"] >= 1
    by_function = "channels.cost_per_1m_preference_changes.by_function"
    for fn in ("preference_centre", "identity_merge", "message_receipts"):
        assert value[f"{by_function}.{fn}.usd"] > 0
    parts = sum(v for name, v in value.items() if name.startswith(by_function))
    assert parts == pytest.approx(value["channels.cost_per_1m_preference_changes_usd"], abs=0.05)
