"""The contact policy's priority rule, as a pure function: a send is held back only when it would take the room a
higher-priority run due later the same day needs, never when that run would not fit anyway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdp.channels.contact import PlannedSend, refusal
from cdp.org import FrequencyCap

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
ONE_SMS_A_DAY = [FrequencyCap(channel="sms", max=1, per_days=1)]
TWO_IN_ALL = [FrequencyCap(channel="all", max=2, per_days=7)]
BIRTHDAY = PlannedSend("birthday", 80, "sms", NOW + timedelta(hours=8))


def test_a_send_that_would_take_a_later_higher_runs_room_yields_to_it() -> None:
    refused = refusal([], "sms", NOW, ONE_SMS_A_DAY, [BIRTHDAY])
    assert refused is not None and refused.yielded_to == BIRTHDAY and refused.cap == ONE_SMS_A_DAY[0]


def test_with_room_for_both_or_on_another_channel_the_send_goes() -> None:
    assert refusal([], "sms", NOW, [FrequencyCap(channel="sms", max=2, per_days=1)], [BIRTHDAY]) is None
    assert refusal([], "email", NOW, ONE_SMS_A_DAY, [BIRTHDAY]) is None  # the SMS cap leaves e-mail alone


def test_a_total_cap_counts_every_channel() -> None:
    # one message already this week: an e-mail now would leave the birthday SMS no room under 2 in all
    history = [("push", NOW - timedelta(days=2))]
    refused = refusal(history, "email", NOW, TWO_IN_ALL, [BIRTHDAY])
    assert refused is not None and refused.yielded_to == BIRTHDAY


def test_a_run_that_would_not_fit_anyway_holds_nothing_back() -> None:
    # the SMS cap is already reached today: the birthday SMS cannot go, so an e-mail now is no loss to it
    history = [("sms", NOW - timedelta(hours=1))]
    assert refusal(history, "email", NOW, ONE_SMS_A_DAY + TWO_IN_ALL, [BIRTHDAY]) is None
    # and an SMS now is refused by the cap itself, not by the priority
    refused = refusal(history, "sms", NOW, ONE_SMS_A_DAY, [BIRTHDAY])
    assert refused is not None and refused.yielded_to is None


def test_the_highest_priority_is_named_when_several_runs_are_ahead() -> None:
    vip = PlannedSend("vip_day", 95, "sms", NOW + timedelta(hours=4))
    refused = refusal([], "sms", NOW, ONE_SMS_A_DAY, [BIRTHDAY, vip])
    assert refused is not None and refused.yielded_to == vip
