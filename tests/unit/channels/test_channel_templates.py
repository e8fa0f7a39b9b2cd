"""Templates render profile fields in a sandbox; an unknown name fails loudly instead of sending a blank."""

from __future__ import annotations

import pytest

from cdp.channels.templates import TemplateRenderError, render


def test_renders_profile_and_offer_fields() -> None:
    # Given a template using a trait and an offer code
    source = "{{ traits.name }}, use {{ offer.code }} ({{ points_balance }} points)"
    # When it is rendered
    text = render(source, {"traits": {"name": "Li Lei"}, "offer": {"code": "CAKE20"}, "points_balance": 400})
    # Then the fields are filled in
    assert text == "Li Lei, use CAKE20 (400 points)"


def test_undefined_name_fails_instead_of_rendering_blank() -> None:
    # Given a template with a typo in a field name
    # When it is rendered / Then it raises rather than send "Hello ,"
    with pytest.raises(TemplateRenderError, match="nmae"):
        render("Hello {{ traits.nmae }},", {"traits": {"name": "Li Lei"}})


def test_sandbox_blocks_access_to_python_internals() -> None:
    # Given a template that tries to reach Python internals
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    # When it is rendered / Then the sandbox refuses
    with pytest.raises(TemplateRenderError):
        render(hostile, {})
