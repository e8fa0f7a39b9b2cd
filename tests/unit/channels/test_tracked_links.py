"""Links in rendered e-mails become signed /r/ links that name the message, the campaign and (encrypted) the
recipient; SMS and untracked sends keep their links as written."""

from __future__ import annotations

import re
from datetime import timedelta

from cdp.channels.models import message_id_for
from cdp.channels.preference_links import PreferenceLink, read_preference_token
from cdp.channels.service import EMAIL_FOOTER, LinkTracking
from cdp.connectors.redirect import read_token
from tests.unit.channels.test_send_service import NOW, World, person, sms_request

TRACKING = LinkTracking("https://t.example.cn", "redirect-secret", now=lambda: NOW)
BODY = "Your cake is ready: https://shop.example.cn/cakes?utm_campaign=cake. See you!"


def test_email_links_are_tracked_with_the_message_and_the_recipient() -> None:
    world = World(person("p1", "email:li.na@example.cn", consent=("email",)))
    request = sms_request("p1", channel="email", template={"subject": "Cake", "body": BODY})
    result = world.send(request, links=TRACKING)
    assert result.sent == 1
    [message] = world.channel.sent
    [token] = re.findall(r"https://t\.example\.cn/r/([A-Za-z0-9_.-]+)", message.body)
    text, _, _ = message.body.partition(EMAIL_FOOTER)  # a marketing e-mail ends with its preference link
    assert text.endswith(". See you!")  # the sentence's full stop is not taken into the link
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


def _link_of(text: str) -> PreferenceLink:
    [token] = re.findall(r"https://t\.example\.cn/v1/preferences/([A-Za-z0-9_.-]+)", text)
    return read_preference_token(token, "redirect-secret", NOW)


def test_every_marketing_email_carries_its_preference_link_in_list_unsubscribe_and_in_the_text() -> None:
    world = World(person("p1", "email:li.na@example.cn", consent=("email",)))
    world.send(sms_request("p1", channel="email", template={"subject": "Cake", "body": BODY}), links=TRACKING)
    [message] = world.channel.sent
    assert message.unsubscribe_url is not None and message.body.endswith(message.unsubscribe_url)
    assert EMAIL_FOOTER in message.body
    link = _link_of(message.unsubscribe_url)
    assert (link.brand_id, link.person_id, link.channel) == ("bakery", "p1", "email")
    assert link.message_id == message.message_id and link.expires_at > NOW + timedelta(days=300)


def test_a_template_may_place_the_link_itself_and_it_is_never_click_tracked() -> None:
    world = World(person("p1", "email:li.na@example.cn", "phone:+8613800138001", consent=("email", "push")))
    body = "Offers: https://shop.example.cn/x . Manage: {{ preferences_url }}"
    world.send(sms_request("p1", channel="email", template={"subject": "S", "body": body}), links=TRACKING)
    [message] = world.channel.sent
    assert EMAIL_FOOTER not in message.body and message.body.count("/v1/preferences/") == 1
    assert message.body.count("/r/") == 1  # the shop link is tracked, the preference link is not
    assert _link_of(message.body).message_id == message.message_id


def test_service_emails_carry_no_unsubscribe_and_untracked_sends_no_link() -> None:
    world = World(person("p1", "email:li.na@example.cn", consent=("email",)))
    request = sms_request("p1", channel="email", template={"subject": "Order", "body": "Shipped"}, purpose="service")
    world.send(request, links=TRACKING)
    world.send(sms_request("p1", channel="email", template={"subject": "S", "body": "Hi"}, run_id="r2", step="t2"))
    assert [(m.unsubscribe_url, m.body) for m in world.channel.sent] == [(None, "Shipped"), (None, "Hi")]
