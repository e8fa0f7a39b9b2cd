"""Templates render something for every person or fail loudly: a person without a name never gets "None," and a
misspelt trait is refused where the template is written."""

from __future__ import annotations

import pytest

from cdp.channels.templates import TemplateRenderError, render, template_problem


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
