"""The AWS senders' delivery events (cdp.connectors.aws_delivery): the brand read back exactly from what the send path
stamped on the message, whatever characters its id holds."""

from __future__ import annotations

import pytest

from cdp.channels.adapters import brand_tag
from cdp.connectors.aws_delivery import brand_of


@pytest.mark.parametrize(
    "brand", ["demo-brand", "acme.cn", "acme_cn", "shop@tmall", "brand:2#east/+", "x-brand", "面包"]
)
def test_an_ses_tag_names_the_brand_exactly(brand: str) -> None:
    tag = brand_tag(brand)
    assert len(tag) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-.@") for c in tag)  # what SES accepts
    event = {"source": "aws.ses", "detail": {"mail": {"tags": {"brand_id": [tag]}}}}
    assert brand_of(event) == brand


def test_two_brands_never_share_a_tag() -> None:
    assert brand_tag("acme.cn") != brand_tag("acme_cn") and brand_tag("a:b") != brand_tag("a_b")
