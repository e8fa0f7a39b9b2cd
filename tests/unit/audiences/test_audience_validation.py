"""Audience validation: every error names its field path and says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.audiences.service import AudienceService
from cdp.audiences.validation import AudienceInvalidError, validate
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import TagCatalog
from tests.unit.audiences.conftest import definition


def _errors(raw: Any, catalog: TagCatalog, others: dict[str, AudienceDefinition] | None = None) -> dict[str, str]:
    report = validate(raw, catalog, others or {})
    assert not report.valid
    return {e.field: e.message for e in report.errors}


def _dynamic(audience_id: str, **fields: Any) -> AudienceDefinition:
    return AudienceDefinition.model_validate(definition(audience_id, "dynamic", **fields))


def test_a_sound_definition_is_valid_and_says_what_it_reads(catalog: TagCatalog) -> None:
    # Given an audience on a tag, an attribute, an aggregate and consent
    raw = definition(
        "dormant_shanghai",
        kind="dynamic",
        include={
            "all": [
                {"tag": "lifecycle", "in": ["dormant", "churned"]},
                {"attr": "city", "eq": "Shanghai"},
                {"agg": "count", "event": "order_placed", "within_days": 365, "gte": 2},
            ]
        },
        exclude=[{"tag": "purchased_last_7d", "eq": True}],
        consent_channel="sms",
    )
    # When it is validated
    report = validate(raw, catalog, {})
    # Then it is valid, real-time, and lists what it reads (the consent attribute included)
    assert report.valid and report.errors == []
    assert report.freshness == "real_time"
    assert report.reads.tags == ["lifecycle", "purchased_last_7d"]
    assert report.reads.attributes == ["city", "consent_sms"]
    assert report.reads.events == ["order_placed"]
    assert any("timeline" in note for note in report.notes)


def test_an_operand_that_does_not_fit_the_tags_type_is_named_by_its_path(catalog: TagCatalog) -> None:
    # Given `in` with numbers on the string tag lifecycle, as the second part of `all`
    raw = definition(include={"all": [{"attr": "city", "eq": "Shanghai"}, {"tag": "lifecycle", "in": [1, 2]}]})
    # Then the error sits at include.all[1].in and names both types
    errors = _errors(raw, catalog)
    assert set(errors) == {"include.all[1].in"}
    assert "1 is a number but tag lifecycle is a string" in errors["include.all[1].in"]


def test_ordering_tests_need_numbers_and_month_sets_need_contains(catalog: TagCatalog) -> None:
    raw = definition(
        include={
            "any": [{"tag": "lifecycle", "gt": 3}, {"tag": "cake_months", "eq": "3"}, {"tag": "rfm_recency", "gte": 4}]
        }
    )
    errors = _errors(raw, catalog)
    assert errors["include.any[0].gt"] == "gt needs a number; tag lifecycle is a string"
    assert "test it with contains" in errors["include.any[1].eq"]
    assert "include.any[2].gte" not in errors  # rfm_recency is a number


def test_an_unknown_tag_is_reported_with_a_suggestion(catalog: TagCatalog) -> None:
    raw = definition(include={"not": {"tag": "lifecycel", "eq": "dormant"}}, exclude=[{"tag": "nope_tag", "eq": 1}])
    errors = _errors(raw, catalog)
    assert errors["include.not.tag"] == "unknown tag 'lifecycel'; did you mean 'lifecycle'?"
    assert errors["exclude[0].tag"] == "unknown tag 'nope_tag'"


def test_shape_errors_from_pydantic_carry_the_same_paths(catalog: TagCatalog) -> None:
    # Given a comparison with two tests, an unknown attribute, and an aggregate without its event
    raw = definition(
        include={
            "all": [
                {"tag": "lifecycle", "eq": "dormant", "ne": "churned"},
                {"attr": "shoe_size", "eq": 42},
                {"any": [{"agg": "count", "gte": 2}]},
            ]
        }
    )
    errors = _errors(raw, catalog)
    assert "name exactly one test" in errors["include.all[0]"]
    assert "unknown attribute 'shoe_size'" in errors["include.all[1]"]
    assert "needs the event type(s)" in errors["include.all[2].any[0]"]
    # And a missing or mistyped top-level field is named too
    assert (
        "Field required" in _errors({"id": "x", "name": "x", "include": {"attr": "city", "eq": "a"}}, catalog)["kind"]
    )
    assert _errors(["not", "an", "object"], catalog) == {"(document)": "expected a JSON object"}


def test_audience_references_must_exist_and_not_point_at_themselves(catalog: TagCatalog) -> None:
    others = {"vip": _dynamic("vip", include={"attr": "member_level", "eq": "gold"})}
    raw = definition(
        "vip_shanghai",
        "dynamic",
        include={
            "all": [
                {"audience": "vip", "eq": True},
                {"audience": "vpi", "eq": True},
                {"audience": "vip_shanghai", "eq": True},
            ]
        },
    )
    errors = _errors(raw, catalog, others)
    assert set(errors) == {"include.all[1].audience", "include.all[2].audience"}
    assert errors["include.all[1].audience"] == "unknown audience 'vpi'; did you mean 'vip'?"
    assert "references itself" in errors["include.all[2].audience"]


def test_a_reference_chain_back_to_the_audience_is_circular(catalog: TagCatalog) -> None:
    # Given b reads c and c reads a (as stored), a new version of a that reads b closes the loop
    others = {
        "b": _dynamic("b", include={"audience": "c", "eq": True}),
        "c": _dynamic("c", include={"all": [{"attr": "city", "eq": "x"}, {"audience": "a", "eq": True}]}),
        "a": _dynamic("a", include={"attr": "city", "eq": "x"}),
    }
    raw = definition("a", "dynamic", include={"any": [{"attr": "city", "eq": "y"}, {"audience": "b", "eq": True}]})
    errors = _errors(raw, catalog, others)
    assert errors == {"include.any[1].audience": "audiences reference each other: a -> b -> c -> a"}


def test_dynamic_audiences_cannot_read_static_ones_but_static_can_read_dynamic(catalog: TagCatalog) -> None:
    others = {
        "frozen": AudienceDefinition.model_validate(definition("frozen", "static")),
        "live": _dynamic("live"),
    }
    dynamic = definition("d", "dynamic", include={"audience": "frozen", "eq": True})
    assert "cannot reference static audience 'frozen'" in _errors(dynamic, catalog, others)["include.audience"]
    static = definition(
        "s", "static", include={"all": [{"audience": "frozen", "eq": True}, {"audience": "live", "eq": True}]}
    )
    assert validate(static, catalog, others).valid
    # And an audience a dynamic one reads cannot turn static
    reader = {"reader": _dynamic("reader", include={"audience": "live", "eq": True})}
    turned = definition("live", "static")
    assert "reader reference 'live', so it must stay dynamic" in _errors(turned, catalog, {**others, **reader})["kind"]


def test_batch_inputs_make_the_audience_batch_fresh(catalog: TagCatalog) -> None:
    raw = definition(include={"all": [{"tag": "cake_months", "contains": 3}, {"score": "churn", "gte": 0.5}]})
    report = validate(raw, catalog, {})
    assert report.valid and report.freshness == "batch"
    assert any("cake_months" in n for n in report.notes) and any("churn" in n for n in report.notes)


def test_define_raises_with_every_problem_and_saves_nothing(service: AudienceService) -> None:
    raw = definition(include={"all": [{"tag": "nope", "eq": 1}, {"tag": "lifecycle", "gte": 1}]})
    with pytest.raises(AudienceInvalidError) as caught:
        service.define(raw)
    assert [e.field for e in caught.value.errors] == ["include.all[0].tag", "include.all[1].gte"]
    assert caught.value.location == "include.all[0].tag"
    assert "(and 1 more)" in caught.value.message
    assert service.list().audiences == []
