"""The sample audiences under events/audiences/ are the demo's own definitions and valid against the bundled catalog.

The README has newcomers define them with `cdp audience define`; the demo defines the same audiences in code. If the
two drift, the README's walkthrough and the demo's report describe different audiences.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cdp.audiences.validation import validate
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import bundled_catalog
from cdp_local.demo.tags_audiences import DYNAMIC_AUDIENCE, STATIC_AUDIENCE

AUDIENCES = Path(__file__).resolve().parents[2] / "events" / "audiences"


def load(name: str) -> object:
    return yaml.safe_load((AUDIENCES / f"{name}.yaml").read_text(encoding="utf-8"))


def test_the_sample_files_are_the_demos_definitions() -> None:
    # Given the shipped files; When read as YAML; Then each equals what the demo posts to the audience API
    assert load("active_buyers") == DYNAMIC_AUDIENCE
    assert load("winter_cake_sms") == STATIC_AUDIENCE
    assert sorted(p.stem for p in AUDIENCES.glob("*.yaml")) == ["active_buyers", "winter_cake_sms"]


def test_the_sample_files_validate_in_the_order_the_readme_defines_them() -> None:
    # Given active_buyers validated alone, then winter_cake_sms with active_buyers stored (it reads that audience)
    catalog = bundled_catalog()
    first = validate(load("active_buyers"), catalog, {})
    stored = {"active_buyers": AudienceDefinition.model_validate(load("active_buyers"))}
    second = validate(load("winter_cake_sms"), catalog, stored)
    # Then both are valid, and winter_cake_sms alone is not (the README's order matters)
    assert first.valid and second.valid, (first.errors, second.errors)
    assert not validate(load("winter_cake_sms"), catalog, {}).valid
