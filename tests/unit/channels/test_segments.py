"""SMS length and parts: GSM-7 and UCS-2 (3GPP TS 23.038) and the China providers' character rule."""

from __future__ import annotations

import pytest

from cdp.channels.segments import GSM7_BASIC, SmsLength, china_sms_length, sms_length


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3), (153 * 3 + 1, 4)],
)
def test_gsm7_boundaries(length: int, segments: int) -> None:
    assert sms_length("a" * length) == SmsLength("GSM-7", length, length, segments)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3), (67 * 3 + 1, 4)],
)
def test_ucs2_boundaries(length: int, segments: int) -> None:
    assert sms_length("蛋" * length) == SmsLength("UCS-2", length, length, segments)


def test_the_empty_text_is_no_message() -> None:
    assert sms_length("") == SmsLength("GSM-7", 0, 0, 0)


@pytest.mark.parametrize("ch", ["€", "[", "]", "{", "}", "^", "~", "\\", "|", "\f"])
def test_an_extension_character_takes_two_septets(ch: str) -> None:
    assert sms_length(ch) == SmsLength("GSM-7", 1, 2, 1)
    assert sms_length("a" * 158 + ch) == SmsLength("GSM-7", 159, 160, 1)
    assert sms_length("a" * 159 + ch).segments == 2  # 161 septets


def test_an_escape_pair_is_never_split_between_parts() -> None:
    # 152 plain + one € at septets 153-154: the pair moves whole to the second part
    text = "a" * 152 + "€" + "a" * 152
    assert sms_length(text).units == 306
    assert sms_length(text).segments == 3  # 152 | 2 + 151 | 1, not 153 | 153
    assert sms_length("a" * 151 + "€" + "a" * 153).segments == 2  # 153 | 153 exactly


def test_the_gsm_basic_table_stays_gsm7() -> None:
    text = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà\n\r "
    assert sms_length(text).encoding == "GSM-7"
    assert sms_length(text).units == len(text)
    assert len(GSM7_BASIC) == 127  # 128 codes, ESC (0x1B) is not a character


@pytest.mark.parametrize("ch", ["ç", "á", "ê", "`", "\t", "“", "é\u0301", "中"])
def test_a_character_outside_the_tables_makes_it_ucs2(ch: str) -> None:
    assert sms_length("Hello " + ch).encoding == "UCS-2"


def test_an_emoji_is_two_utf16_units_and_never_split() -> None:
    assert sms_length("😀") == SmsLength("UCS-2", 1, 2, 1)
    assert sms_length("a" * 68 + "😀") == SmsLength("UCS-2", 69, 70, 1)
    assert sms_length("a" * 69 + "😀").segments == 2  # 71 units
    # 66 units, then a surrogate pair at units 67-68: it moves whole to the second part
    assert sms_length("a" * 66 + "😀" + "a" * 66).segments == 3  # 66 | 2 + 65 | 1


def test_the_china_rule_counts_the_sign_name_and_every_character_once() -> None:
    # 【甜心烘焙】 is 6 characters
    assert china_sms_length("蛋" * 64, "甜心烘焙") == SmsLength("UCS-2", 70, 70, 1)
    assert china_sms_length("蛋" * 65, "甜心烘焙") == SmsLength("UCS-2", 71, 71, 2)
    assert china_sms_length("a" * (67 * 2 - 6), "甜心烘焙").segments == 2  # Latin counts one too: 134
    assert china_sms_length("a" * (67 * 2 - 5), "甜心烘焙").segments == 3  # 135
    # the documented example: 160 characters are billed 67 + 67 + 26
    assert china_sms_length("x" * 154, "甜心烘焙") == SmsLength("UCS-2", 160, 160, 3)
    # a text GSM-7 would fit in one part is still 70/67 in China
    assert sms_length("a" * 100).segments == 1
    assert china_sms_length("a" * 100, "CDP").segments == 2


def test_the_china_rule_of_an_empty_text_is_no_message() -> None:
    assert china_sms_length("", "甜心烘焙") == SmsLength("UCS-2", 0, 0, 0)
