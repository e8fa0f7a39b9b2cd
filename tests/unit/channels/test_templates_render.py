"""Templates render something for every person or fail loudly: a person without a name never gets "None," and a
misspelt trait is refused where the template is written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp.channels.models import SendBatchRequest
from cdp.channels.service import template_context
from cdp.channels.templates import TemplateRenderError, render, template_problem
from cdp.profile.models import ModelScore, Profile


def test_an_empty_value_fails_the_render_instead_of_printing_none() -> None:
    with pytest.raises(TemplateRenderError, match="empty for this person"):
        render("Hi {{ traits.name }}, cakes are in", {"traits": {"name": None}})
    with pytest.raises(TemplateRenderError, match="empty for this person"):
        render("Code {{ offer.code }}", {"offer": {"code": ""}})
    assert render("Hi {{ traits.name or 'there' }}", {"traits": {"name": None}}) == "Hi there"
    assert render("Points: {{ points_balance }}", {"points_balance": 0}) == "Points: 0"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("Hi {{ traits.name }}", "traits.name may be empty for some persons"),
        ("Your level: {{ member_level }}", "member_level may be empty for some persons"),
        ("Hi {{ traits.nmae or 'there' }}", "traits has no nmae"),
        ("Hi {{ traits.name or 'there' }}", None),
        ("{% if traits.city %}See you in {{ traits.city }}{% endif %}", None),
        ("Code {{ offer.code }} for {{ person_id }}", None),
    ],
)
def test_values_some_persons_lack_need_a_default_where_the_template_is_written(
    source: str, problem: str | None
) -> None:
    found = template_problem(source, has_offer=True)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_template_reads_each_models_prediction_by_name() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    scores = {
        "next_product": ModelScore(score=0.4, model_version="v1", scored_at=now, items=["candles", "cake"]),
        "clv": ModelScore(score=52000.0, model_version="v2", scored_at=now, outputs={"p_alive": 0.8}),
    }
    profile = Profile(person_id="p", brand_id="b", created_at=now, updated_at=now, scores=scores)
    request = SendBatchRequest.model_validate(
        {
            "campaign_id": "c",
            "run_id": "r",
            "step": "touch1",
            "channel": "sms",
            "template": {"body": "x"},
            "batch_key": "campaigns/r/batches/0.json",
        }
    )
    source = "{{ predicted.next_product.ranked[0] }} for you ({{ '%.0f'|format(predicted.clv.p_alive * 100) }}%)"
    assert template_problem(source, has_offer=False) is None
    assert render(source, template_context(profile, request, now.date())) == "candles for you (80%)"
