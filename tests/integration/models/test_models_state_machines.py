"""The train and score state machines executed by moto Step Functions, with Lambda routed to the real handlers.

Runs on `cdp_local.runtime.LocalRuntime` (tables, bucket, functions and state machines from `cdp.topology` and the
very ASL files CDK deploys). Profiles and timelines are seeded with BatchWriteItem in the adapter's layout (one
transaction per event through identity resolution is ~10x slower under moto); the fixture reads them back through
`DynamoTagStore`, so a layout drift fails here loudly rather than silently training on nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cdp import topology
from cdp.models.store import latest_key, model_key
from cdp.tags.dynamodb import DynamoTagStore
from cdp.topology import FunctionSpec
from cdp_local.runtime.core import LocalRuntime
from tests.fakes.model_histories import CAMPAIGN_ID, seed_profiles_table, synthetic_histories

PERSONS = 100
MODEL = "summer_response"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
_promoted: dict[str, str] = {}  # lets the tamper test reuse the model trained above instead of training again


def _seed(db: Any) -> int:
    return seed_profiles_table(db, synthetic_histories(PERSONS, seed=21).histories)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as rt:
        seeded_events = _seed(rt.client("dynamodb"))
        store = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
        profiles = list(store.scan_shard(0, 1))
        assert len(profiles) == PERSONS
        assert sum(len(store.timeline(p)) for p in profiles[:5]) > 0 and seeded_events > PERSONS
        yield rt


def cold_start(function: FunctionSpec) -> None:
    """Drop the adapters a warm handler module caches (the module the runtime imported, whichever it is)."""
    module = sys.modules.get(function.handler.rpartition(".")[0])
    if module is not None:
        module._ports.cache_clear()


def run(rt: LocalRuntime, machine: str, payload: dict[str, Any]) -> tuple[str, Any]:
    arn = rt.start_execution(machine, payload)
    status, output = rt.wait_execution(arn, timeout=120)
    if status == "FAILED":
        output["task_errors"], output["map_run_errors"] = failures(rt, arn)
    return status, output


def failures(rt: LocalRuntime, execution_arn: str) -> tuple[set[str], set[str]]:
    """The error names of the failed Lambda tasks and of the failed Distributed Map runs in an execution's history
    (the cause behind a Fail state). A Distributed Map's items run as child executions: their task errors are in the
    children's histories, not this one (see `scoring_calls`)."""
    events = rt.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return (
        {e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"},
        {e["mapRunFailedEventDetails"]["error"] for e in events if e["type"] == "MapRunFailed"},
    )


@contextmanager
def scoring_calls(rt: LocalRuntime, fail_shard: int | None = None) -> Iterator[list[tuple[str, str | None]]]:
    """Each call of the scoring function while the block runs: (`summarize` or `shard N`, the error type it raised or
    None). The real handler answers, except for `fail_shard`, which raises a ValueError (a bug in one shard)."""
    real = rt.router.resolve(topology.SCORING)
    calls: list[tuple[str, str | None]] = []

    def recording(event: dict[str, Any], context: Any) -> Any:
        call = "summarize" if event.get("action") == "summarize" else f"shard {event['shard']}"
        try:
            if call == f"shard {fail_shard}":
                raise ValueError(f"{call} broke")
            result = real(event, context)
        except Exception as exc:
            calls.append((call, type(exc).__name__))
            raise
        calls.append((call, None))
        return result

    rt.override(topology.SCORING.key, recording)
    try:
        yield calls
    finally:
        rt.override(topology.SCORING.key, None)


def read_json(rt: LocalRuntime, key: str) -> Any:
    return json.loads(rt.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_train_promotes_an_accepted_model_then_score_fans_out_over_shards(runtime: LocalRuntime) -> None:
    # Given seeded profiles / When the train machine runs in campaign-response mode
    status, output = run(
        runtime, "train", {"model_name": MODEL, "campaign_id": CAMPAIGN_ID, "window_days": 14, "min_auc": 0.6}
    )
    # Then it succeeds, promotes the version, and latest.json points at it
    assert status == "SUCCEEDED", output
    assert output["train"]["accepted"] is True
    version = output["train"]["version"]
    assert output["promotion"]["version"] == version
    assert output["train"]["metrics"]["held_out"]["roc_auc"] >= 0.6
    assert read_json(runtime, latest_key(MODEL))["version"] == version
    _promoted["latest"] = version
    # When the score machine runs over 3 shards
    status, totals = run(runtime, "score", {"model_names": [MODEL], "total_shards": 3})
    # Then every profile was scored once, by the promoted version, and the score sits on the profile
    assert status == "SUCCEEDED", totals
    assert totals == {"model_versions": {MODEL: [version]}, "total_shards": 3, "scored": PERSONS}
    store = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=runtime.client("dynamodb"))
    profiles = list(store.scan_shard(0, 1))
    assert len(profiles) == PERSONS
    assert all(p.scores[MODEL].model_version == version for p in profiles)
    # And a single shard (a one-item Map) gives the same total
    status, totals = run(runtime, "score", {"model_names": [MODEL], "total_shards": 1})
    assert (status, totals["scored"]) == ("SUCCEEDED", PERSONS)
    # And every score was written again (a model no tag reads: the scores alone, in one batch per predict call)
    assert all(p.scores[MODEL].scored_at > profiles[0].scores[MODEL].scored_at for p in store.scan_shard(0, 1))


def test_rejected_model_is_saved_but_not_promoted(runtime: LocalRuntime) -> None:
    # Given a bar no model can pass / When the train machine runs
    status, output = run(
        runtime, "train", {"model_name": "strict_model", "campaign_id": CAMPAIGN_ID, "window_days": 14, "min_auc": 1.0}
    )
    # Then it fails as ModelRejected, and no latest.json exists for that model
    assert status == "FAILED"
    assert output["error"] == "ModelRejected"
    listed = runtime.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/strict_model/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert keys and all(k.endswith(("model.joblib", "manifest.json")) for k in keys)
    assert latest_key("strict_model") not in keys


def test_bad_requests_and_unscoreable_models_fail_with_clear_errors(runtime: LocalRuntime) -> None:
    # Given a request the train task rejects (window of 0 days) / Then the machine ends in TrainingFailed
    status, output = run(runtime, "train", {"model_name": "bad_request", "window_days": 0})
    assert (status, output["error"]) == ("FAILED", "TrainingFailed")
    assert output["task_errors"] == {"ValidationError"}
    # Given a model that was never promoted / When the score machine runs
    with scoring_calls(runtime) as calls:
        status, output = run(runtime, "score", {"model_names": ["never_trained"], "total_shards": 2})
    # Then every shard fails as NotFoundError, the Distributed Map run fails on its zero tolerance, and the machine
    # ends in ScoringFailed without totalling
    assert sorted(calls) == [("shard 0", "NotFoundError"), ("shard 1", "NotFoundError")]
    assert (status, output["error"]) == ("FAILED", "ScoringFailed")
    assert output["map_run_errors"] == {"States.ExceedToleratedFailureThreshold"}


def test_one_failed_shard_fails_the_run_before_any_total(runtime: LocalRuntime) -> None:
    # Given a promoted model (trained above, or now) and a scoring function whose shard 1 breaks
    if "latest" not in _promoted:
        status, output = run(runtime, "train", {"model_name": MODEL, "campaign_id": CAMPAIGN_ID, "window_days": 14})
        assert status == "SUCCEEDED", output
        _promoted["latest"] = output["train"]["version"]
    # When the score machine runs over 3 shards
    with scoring_calls(runtime, fail_shard=1) as calls:
        status, output = run(runtime, "score", {"model_names": [MODEL], "total_shards": 3})
    # Then the Distributed Map fails (ToleratedFailurePercentage 0) and Totals never sums the other shards' results
    assert sorted(calls) == [("shard 0", None), ("shard 1", "ValueError"), ("shard 2", None)]
    assert (status, output["error"]) == ("FAILED", "ScoringFailed")
    assert output["map_run_errors"] == {"States.ExceedToleratedFailureThreshold"}


def test_tampered_promoted_model_stops_a_cold_scoring_run(runtime: LocalRuntime) -> None:
    # Given a promoted version whose bytes are overwritten afterwards (version from the registry's latest.json)
    if "latest" not in _promoted:
        status, output = run(runtime, "train", {"model_name": MODEL, "campaign_id": CAMPAIGN_ID, "window_days": 14})
        assert status == "SUCCEEDED", output
    version = read_json(runtime, latest_key(MODEL))["version"]
    runtime.client("s3").put_object(Bucket=BUCKET, Key=model_key(MODEL, version), Body=b"not a model")
    # When scored by a cold function (a warm one keeps the bytes it verified at load)
    cold_start(topology.SCORING)
    with scoring_calls(runtime) as calls:
        status, output = run(runtime, "score", {"model_names": [MODEL], "total_shards": 2})
    # Then the integrity check fails the run instead of unpickling unknown bytes
    assert {error for _, error in calls} == {"ModelIntegrityError"}
    assert (status, output["error"]) == ("FAILED", "ScoringFailed")
    assert output["map_run_errors"] == {"States.ExceedToleratedFailureThreshold"}


def test_a_batch_trains_every_model_over_one_read_and_promotes_only_the_accepted(runtime: LocalRuntime) -> None:
    # Given a batch: a model that passes, one held to a bar nothing passes, one this data cannot train (no holdout)
    models = [
        {"model_name": "batch_ok", "campaign_ids": [CAMPAIGN_ID], "window_days": 14, "min_auc": 0.6},
        {"model_name": "batch_strict", "campaign_ids": [CAMPAIGN_ID], "window_days": 14, "min_auc": 1.0},
        {"model_name": "batch_uplift", "kind": "uplift", "campaign_ids": [CAMPAIGN_ID], "window_days": 14},
    ]
    # When the train machine runs it
    status, output = run(runtime, "train", {"models": models})
    # Then it succeeds: each model trained and judged on its own, the untrainable one reported with why
    assert status == "SUCCEEDED", output
    results = {r["model_name"]: r for r in output["batch"]["results"]}
    assert (results["batch_ok"]["accepted"], results["batch_strict"]["accepted"]) == (True, False)
    assert results["batch_strict"]["rejected_because"]
    (failure,) = output["batch"]["failures"]
    assert failure["model_name"] == "batch_uplift" and "holdout" in failure["error"]
    # And only the accepted version was promoted
    promoted = {p["model_name"]: p["promoted"] for p in output["promotions"]}
    assert promoted == {"batch_ok": True, "batch_strict": False}
    assert read_json(runtime, latest_key("batch_ok"))["version"] == results["batch_ok"]["version"]
    listed = runtime.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=latest_key("batch_strict"))
    assert "Contents" not in listed
