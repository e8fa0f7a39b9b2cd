"""The in-app channel's models: `inapp` is a channel of sends, campaigns, receipts, consent and frequency caps; a
template's link is a template (checked when it is defined); a link that could run script or leave https is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cdp.campaigns.models import Touch
from cdp.channels.inbox import safe_link
from cdp.channels.models import MessageTemplate, SendBatchRequest
from cdp.ingest.events import parse_event
from cdp.org import FrequencyCap


@pytest.mark.parametrize(
    ("link", "safe"),
    [
        ("https://shop.example/orders/1", True),
        ("demo-bakery://orders/latest", True),
        ("weixin://dl/business/?t=abc", True),
        ("http://shop.example/orders/1", False),
        ("javascript:alert(1)", False),
        ("JavaScript://%0aalert(1)", False),
        ("data:text/html,<script>", False),
        ("file:///etc/passwd", False),
        ("/orders/1", False),
        ("https://", False),
        ("https://shop.example/a b", False),
        ("https://" + "x" * 1100, False),
    ],
)
def test_only_https_or_an_apps_own_scheme_is_a_link_an_inapp_message_may_carry(link: str, safe: bool) -> None:
    assert safe_link(link) is safe


def test_inapp_is_a_channel_of_sends_campaigns_receipts_consent_and_caps() -> None:
    template = {"subject": "Ready", "body": "Your order is ready", "link": "bakery://orders/{{ campaign_id }}"}
    request = SendBatchRequest.model_validate(
        {"campaign_id": "c", "run_id": "r", "step": "touch1", "channel": "inapp", "template": template,
         "person_ids": ["p1"]}
    )  # fmt: skip
    assert (request.channel, request.template.link) == ("inapp", "bakery://orders/{{ campaign_id }}")
    assert Touch.model_validate({"channel": "inapp", "or_channels": ["push"], "template": template}).channel == "inapp"
    opened = parse_event(
        {
            "event_id": "e1",
            "event_type": "message_opened",
            "source": "app",
            "brand_id": "bakery",
            "occurred_at": "2026-03-01T10:00:00Z",
            "identifiers": [{"type": "user_id", "value": "u1"}],
            "properties": {"message_id": "m1", "channel": "inapp"},
        }
    )
    assert opened.properties.channel.value == "inapp"  # type: ignore[union-attr]
    assert FrequencyCap(channel="inapp", max=3, per_days=7).channel == "inapp"


def test_a_templates_link_must_compile() -> None:
    with pytest.raises(ValidationError, match="template syntax error"):
        MessageTemplate(body="hello", link="bakery://orders/{{ campaign_id ")
