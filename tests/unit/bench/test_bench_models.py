"""The models benchmark at a small size: every kind trains and reports its time and artifact, the nightly score is
timed and priced, and four models in one pass cost less than one model per pass (one write and one read of each
person instead of four); the figures themselves: `cdp bench --suite models`."""

from __future__ import annotations

import pytest

from cdp import topology
from cdp_local.bench_models import models_benchmark

pytestmark = pytest.mark.xdist_group("runtime")

PERSONS = 200  # MIN_PERSONS: enough rows of each class to train on
KINDS = ("propensity", "churn", "clv", "next_product")


@pytest.fixture(scope="module")
def value() -> dict[str, float]:
    results = models_benchmark(persons=PERSONS)
    return {name: float(metric["value"]) for name, metric in results.items()}


def test_every_scheduled_kind_trains_and_reports_its_time_and_artifact(value: dict[str, float]) -> None:
    assert value["models.persons"] == PERSONS and value["models.events_per_person"] > 1
    for kind in KINDS:
        assert value[f"models.train_seconds.{kind}"] > 0
        assert value[f"models.artifact_kb.{kind}"] > 0


def test_scoring_is_timed_in_process_and_on_the_runtime(value: dict[str, float]) -> None:
    assert value["models.score_persons_per_s"] > 0
    assert value["models.score_persons_per_s_in_process"] > value["models.score_persons_per_s"]
    for name, _ in topology.SCHEDULED_MODELS:
        assert value[f"models.score_ms_per_1k_persons.{name}"] > 0
    assert value["models.lambda_billed_ms_per_person"] > 0
    assert value["models.persons_per_shard_in_timeout"] > 0


def test_a_pass_is_priced_by_its_reads_writes_and_lambda_time(value: dict[str, float]) -> None:
    total = value["models.usd_per_1m_persons_scored"]
    parts = [value[name] for name in value if name.startswith("models.usd_per_1m_persons_scored.")]
    assert total == pytest.approx(sum(parts), abs=0.001)
    for key in ("dynamodb_rru", "dynamodb_wru", "lambda_gb_seconds", "lambda_requests", "stepfunctions_transitions"):
        assert value[f"models.usd_per_1m_persons_scored.{key}"] > 0
    # the shard's scan reads every item of its segment (billed from the table), the timelines again by Query
    assert value["models.one_pass.rru_per_person.Scan"] > 0.5
    assert value["models.one_pass.rru_per_person.Query"] > 0.5
    # one write per person, on the whole tags item: at least 1 WRU
    assert value["models.one_pass.writes_per_person"] == 1
    assert value["models.one_pass.wru_per_person"] >= 1


def test_four_models_in_one_pass_cost_less_than_one_model_per_pass(value: dict[str, float]) -> None:
    one_pass = value["models.usd_per_1m_persons_scored"]
    four_passes = value["models.usd_per_1m_persons_scored_one_model_per_pass"]
    assert 0 < one_pass < four_passes
    assert value["models.one_model_per_pass_cost_ratio"] == pytest.approx(four_passes / one_pass, abs=0.01)
    # each pass reads and writes every person again: four writes, four times the reads
    assert value["models.one_model_per_pass.writes_per_person"] == 4
    assert value["models.one_model_per_pass.wru_per_person"] == pytest.approx(
        4 * value["models.one_pass.wru_per_person"]
    )
    assert value["models.one_model_per_pass.rru_per_person"] == pytest.approx(
        4 * value["models.one_pass.rru_per_person"]
    )
