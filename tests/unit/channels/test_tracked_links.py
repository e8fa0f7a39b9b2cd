"""Links in rendered e-mails become signed /r/ links that name the message, the campaign and (encrypted) the
recipient; SMS and untracked sends keep their links as written."""

from __future__ import annotations

import re

from cdp.channels.models import message_id_for
from cdp.channels.service import LinkTracking
from cdp.connectors.redirect import read_token
from tests.unit.channels.test_send_service import World, person, sms_request

TRACKING = LinkTracking("https://t.example.cn", "redirect-secret")
BODY = "Your cake is ready: https://shop.example.cn/cakes?utm_campaign=cake. See you!"


def test_email_links_are_tracked_with_the_message_and_the_recipient() -> None:
    world = World(person("p1", "email:li.na@example.cn", consent=("email",)))
    request = sms_request("p1", channel="email", template={"subject": "Cake", "body": BODY})
    result = world.send(request, links=TRACKING)
    assert result.sent == 1
    [message] = world.channel.sent
    [token] = re.findall(r"https://t\.example\.cn/r/([A-Za-z0-9_.-]+)", message.body)
    assert message.body.endswith(". See you!")  # the sentence's full stop is not taken into the link
    claims = read_token(token, "redirect-secret")
    assert claims.url == "https://shop.example.cn/cakes?utm_campaign=cake"
    assert claims.message_id == message_id_for("cake", "touch1", "p1") and claims.campaign_id == "cake"
    assert claims.identifier_key == "email:li.na@example.cn" and claims.brand_id == "bakery"
    assert "li.na" not in token  # the recipient travels encrypted


def test_sms_and_untracked_sends_keep_their_links() -> None:
    world = World(person("p1", "phone:+8613800138001"), person("p2", "phone:+8613800138002"))
    world.send(sms_request("p1", template={"body": BODY}), links=TRACKING)
    world.send(sms_request("p2", template={"body": BODY}, run_id="cake-r2"))
    assert [m.body for m in world.channel.sent] == [BODY, BODY]
