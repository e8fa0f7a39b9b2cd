"""The tag catalog as code: the bundled families load, and every kind of bad definition is reported with its file
and field path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdp.tags.catalog import CatalogError, TagCatalog, bundled_catalog

FAMILIES = {
    "lifecycle": {"lifecycle"},
    "value": {"rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment", "spend_tier"},
    "preference": {"top_category", "favourite_store", "preferred_channel"},
    "timing": {
        "cake_months",
        "repurchase_cycle_days",
        "next_purchase_in_days",
        "repurchase_due_7d",
        "months_since_ac_purchase",
    },
    "predictive": {"response_propensity", "churn_risk"},
}


def _tag(name: str = "t1", **overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": name,
        "description": "a test tag",
        "category": "behavior",
        "kind": "rule",
        "freshness": "real_time",
        "owner": "tests",
        "rule": {"when": {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2}},
    }
    base.update(overrides)
    return base


def _errors(documents: dict[str, str]) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        TagCatalog.from_documents(documents)
    return [str(e) for e in caught.value.errors]


def _yaml_doc(*tags: dict[str, object]) -> str:
    return json.dumps({"version": 1, "tags": list(tags)})  # JSON is YAML too


def test_bundled_catalog_has_every_family_in_evaluation_order() -> None:
    catalog = bundled_catalog()
    by_category: dict[str, set[str]] = {}
    for name, d in catalog.definitions.items():
        by_category.setdefault(d.category, set()).add(name)
    for category, names in FAMILIES.items():
        assert names <= by_category[category], category
    # a tag is evaluated after the tags it reads
    order = catalog.order
    assert order.index("rfm_recency") < order.index("rfm_segment")
    assert order.index("lifecycle") < order.index("dormant_high_value")
    assert catalog.definitions["lifecycle"].emits == "lifecycle.changed"


def test_triggers_follow_what_each_tag_reads() -> None:
    catalog = bundled_catalog()
    # an order line aggregate is woken by the order it comes from; attributes by the events that change them
    assert catalog.triggers["top_category"] == {"order_placed"}
    assert catalog.triggers["spend_tier"] == {"order_placed", "order_returned"}
    assert catalog.triggers["gender"] == {"identify"}
    # a tag that reads tags inherits their triggers
    assert catalog.triggers["dormant_high_value"] == {"order_placed", "order_returned"}
    assert catalog.affected_by("page_view") == []
    assert "gender" in catalog.affected_by("identity_changed")
    assert "cake_months" not in catalog.affected_by("order_placed")  # batch freshness: the nightly refresh


def test_catalog_loads_from_a_directory_of_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 2\ntags:\n" + "\n".join("  " + line for line in _as_yaml(_tag("a"))))
    (tmp_path / "b.json").write_text(_yaml_doc(_tag("b", rule={"when": {"tag": "a", "eq": True}})))
    (tmp_path / "notes.txt").write_text("ignored")
    catalog = TagCatalog.from_directory(tmp_path)
    assert catalog.order == ["a", "b"] and catalog.version == "a@2,b@1"


def _as_yaml(tag: dict[str, object]) -> list[str]:
    lines = [f"- name: {tag['name']}"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in tag.items() if k != "name"]
    return lines


@pytest.mark.parametrize(
    ("tag", "field", "message"),
    [
        (_tag(category="fun"), "tags[0].category", "Input should be"),
        (_tag(name="Bad Name"), "tags[0].name", "should match pattern"),
        (_tag(colour="red"), "tags[0].colour", "Extra inputs are not permitted"),
        (
            _tag(rule={"when": {"agg": "count", "event": "order_placed", "gte": 2, "lt": 5}}),
            "tags[0].rule.when",
            "exactly one test",
        ),
        (
            _tag(rule={"when": {"all": [{"attr": "shoe_size", "gt": 40}]}}),
            "tags[0].rule.when.all[0]",
            "unknown attribute 'shoe_size'",
        ),
        (
            _tag(rule={"when": {"agg": "sum", "event": "order_placed", "gte": 1}}),
            "tags[0].rule.when",
            "needs a 'field'",
        ),
        (
            _tag(rule={"when": {"agg": "sum", "event": "order_line", "field": "category", "gte": 1}}),
            "tags[0].rule.when",
            "needs a numeric field",
        ),
        (
            _tag(rule={"when": {"agg": "count", "event": "order_shipped", "gte": 1}}),
            "tags[0].rule.when",
            "unknown event type 'order_shipped'",
        ),
        (
            _tag(rule={"when": {"agg": "count", "event": "order_line", "where": {"category": 3}, "gte": 1}}),
            "tags[0].rule.when",
            "where.category: 3 is not a string",
        ),
        (
            _tag(rule={"when": {"not": {"attr": "age", "between": [60, 40]}}}),
            "tags[0].rule.when.not",
            "low 60 is above high 40",
        ),
        (
            _tag(rule={"cases": [{"when": {"attr": "age", "lt": 30}, "value": "young"}], "else": 3}),
            "tags[0].rule",
            "one type",
        ),
        (_tag(rule={"when": {"attr": "age", "gt": 1}, "else": "x"}), "tags[0].rule", "'else' only goes with 'cases'"),
        (_tag(kind="fact"), "tags[0]", "a fact tag copies one attribute"),
        (_tag(kind="predictive"), "tags[0]", "a predictive tag reads a model score"),
        (_tag(valid_days=30), "tags[0]", "valid_days is for static tags"),
    ],
)
def test_a_bad_definition_names_its_file_and_field(tag: dict[str, object], field: str, message: str) -> None:
    errors = _errors({"mine.yaml": _yaml_doc(tag)})
    assert any(e.startswith(f"mine.yaml: {field}: ") and message in e for e in errors), errors


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"when": {"tag": "nope", "eq": "x"}}, "unknown tag 'nope'"),
        ({"when": {"attr": "gender", "gt": 3}}, "gt needs a number; attr gender is a string"),
        ({"when": {"attr": "order_count", "eq": "many"}}, "'many' is a string but attr order_count is a number"),
        ({"when": {"agg": "usual_months", "event": "order_line", "eq": "3"}}, "test it with contains"),
        ({"when": {"attr": "age", "contains": 3}}, "contains needs usual_months"),
        ({"when": {"tag": "base", "eq": 1}}, "1 is a number but tag base is a bool"),
    ],
)
def test_whole_catalog_checks_name_the_field(rule: dict[str, object], message: str) -> None:
    base = _tag("base")
    errors = _errors({"x.yaml": _yaml_doc(base, _tag("t2", rule=rule))})
    assert any(e.startswith("x.yaml: tags[1].rule.when: ") and message in e for e in errors), errors


def test_duplicate_names_and_cycles_are_reported() -> None:
    dup = _errors({"a.yaml": _yaml_doc(_tag("t1")), "b.yaml": _yaml_doc(_tag("t1"))})
    assert dup == ["b.yaml: tags[0].name: 't1' is already defined in a.yaml"]
    loop = _errors(
        {
            "c.yaml": _yaml_doc(
                _tag("x", rule={"when": {"tag": "y", "eq": True}}), _tag("y", rule={"when": {"tag": "x", "eq": True}})
            )
        }
    )
    assert len(loop) == 1 and "tags read each other: x -> y -> x" in loop[0]


def test_unparseable_documents_are_reported_per_file() -> None:
    errors = _errors({"bad.yaml": "version: [1\n", "bad.json": "{", "list.yaml": "- 1\n", "ok.yaml": _yaml_doc(_tag())})
    assert any(e.startswith("bad.yaml: (document): not valid YAML") for e in errors)
    assert any(e.startswith("bad.json: (document): not valid JSON") for e in errors)
    assert "list.yaml: (document): expected a mapping with 'version' and 'tags'" in errors


def test_yaml_pitfall_underscored_numbers_are_caught() -> None:
    # YAML 1.1 reads 18_24 as the integer 1824: the case values no longer share one type
    doc = (
        "version: 1\ntags:\n- name: band\n  description: d\n  category: basic\n  kind: rule\n  freshness: batch\n"
        "  owner: o\n  rule:\n    cases:\n    - {when: {attr: age, lt: 18}, value: minor}\n"
        "    - {when: {attr: age, lt: 25}, value: 18_24}\n"
    )
    assert _errors({"band.yaml": doc}) == [
        "band.yaml: tags[0].rule: every case value must be of one type (got number, string)"
    ]
