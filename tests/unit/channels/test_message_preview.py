"""A message previewed for one person (cdp.channels.preview): rendered with their profile, the provider template's
variables filled, an SMS's segments counted with its short links and sign name, and what would fail named."""

# ruff: noqa: RUF001 - Chinese message texts, with full-width punctuation

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdp.channels.models import MessageTemplate, Offer
from cdp.channels.preview import preview
from cdp.profile.models import Profile, Traits

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def person(name: str | None = "小王") -> Profile:
    return Profile(
        person_id="p1",
        brand_id="bakery",
        created_at=NOW - timedelta(days=30),
        updated_at=NOW,
        identifiers=["phone:+8613800138000", "wechat_openid:wx-oa:oX7P"],
        traits=Traits(name=name, city="上海"),
    )


def test_an_sms_is_rendered_for_the_person_with_its_template_variables_and_segments() -> None:
    template = MessageTemplate(
        body="{{ traits.name or '顾客' }}您好，冬季蛋糕满100减20，券码 {{ offer.code }}，"
        "详情 https://shop.example/winter?from=sms 回TD退订",
        sms={"code": "SMS_468190012", "params": {"name": "{{ traits.name or '顾客' }}", "code": "{{ offer.code }}"}},
    )
    seen = preview(
        template,
        "sms",
        person(),
        NOW,
        offer=Offer(offer_id="winter-cake-20"),
        link_base="https://c.example.cn",
        sign_name="示例烘焙",
    )
    assert seen.address == "+8613800138000" and seen.problems == []
    assert seen.fields == {"name": "小王", "code": "CODE2026XY"}  # the real code is issued as the message leaves
    assert seen.body is not None and seen.body.startswith("小王您好")
    assert seen.sms is not None and seen.sms.encoding == "UCS-2"
    # the link counts as the 35-character short link it becomes, and a China provider adds 【示例烘焙】
    assert seen.sms.characters == len(seen.body) - len("https://shop.example/winter?from=sms") + len(
        "https://c.example.cn/r/xxxxxxxxx"
    )
    assert seen.sms.segments == (1 if seen.sms.characters <= 70 else -(-seen.sms.characters // 67))
    assert seen.sms.china_segments == (1 if seen.sms.characters + 6 <= 70 else -(-(seen.sms.characters + 6) // 67))


def test_a_value_the_person_lacks_and_a_wechat_field_too_long_are_named() -> None:
    template = MessageTemplate(
        body="Hi {{ traits.name }}",
        wechat={
            "template_id": "tmpl-cake",
            "fields": {
                "thing1": "{{ traits.city or '' }}冬季蛋糕上市啦，满一百元立减二十元，仅限本周",
                "amount2": "20元",
            },
        },
    )
    seen = preview(template, "wechat", person(name=None), NOW)
    assert seen.address == "oX7P"
    assert any(p.startswith("body: template render failed: a variable is empty") for p in seen.problems)
    assert any("thing1:" in p and "at most 20" in p for p in seen.problems), seen.problems
    assert seen.fields["amount2"] == "20元" and seen.body is None
