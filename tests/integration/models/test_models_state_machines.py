"""The train and score state machines executed by moto Step Functions, with Lambda routed to the real handlers.

Runs on `cdp_local.runtime.LocalRuntime` (tables, bucket, functions and state machines from `cdp.topology` and the
very ASL files CDK deploys). Profiles and timelines are written through `DynamoProfileStore.commit`, the adapter's
own write path, so no item layout is copied here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cdp import topology
from cdp.identity.resolution import ResolutionPlan
from cdp.models.store import latest_key, model_key
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.profile.models import apply_event
from cdp_local.runtime.core import LocalRuntime
from functions.scoring import handler as scoring_handler
from functions.train import handler as train_handler
from tests.fakes.model_histories import CAMPAIGN_ID, synthetic_histories

PERSONS = 160
MODEL = "summer-response"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME


def _seed(store: DynamoProfileStore) -> None:
    for history in synthetic_histories(PERSONS, seed=21).histories:
        profile = history.profile
        for n, event in enumerate(history.events):
            target = apply_event(profile, event).model_copy(update={"version": n + 1})
            committed = store.commit(ResolutionPlan(target=target, target_expected_version=n or None), event)
            assert committed
            profile = target


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    # the handlers cache their adapters per process: start from fresh ones bound to this runtime's moto
    train_handler._ports.cache_clear()
    scoring_handler._ports.cache_clear()
    with LocalRuntime() as rt:
        _seed(DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb")))
        yield rt
    train_handler._ports.cache_clear()
    scoring_handler._ports.cache_clear()


def run(rt: LocalRuntime, machine: str, payload: dict[str, Any]) -> tuple[str, Any]:
    return rt.wait_execution(rt.start_execution(machine, payload), timeout=120)


def read_json(rt: LocalRuntime, key: str) -> Any:
    return json.loads(rt.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_train_promotes_an_accepted_model_then_score_fans_out_over_shards(runtime: LocalRuntime) -> None:
    # Given seeded profiles / When the train machine runs in campaign-response mode
    status, output = run(
        runtime, "train", {"model_name": MODEL, "campaign_id": CAMPAIGN_ID, "window_days": 14, "min_auc": 0.6}
    )
    # Then it succeeds, promotes the version, and latest.json points at it
    assert status == "SUCCEEDED", output
    assert output["promoted"] is True
    version = output["version"]
    assert output["metrics"]["held_out"]["roc_auc"] >= 0.6
    assert read_json(runtime, latest_key(MODEL))["version"] == version
    # When the score machine runs over 3 shards
    status, totals = run(runtime, "score", {"model_name": MODEL, "total_shards": 3})
    # Then every profile was scored once, by the promoted version, and the score sits on the profile
    assert status == "SUCCEEDED", totals
    assert totals == {"model_name": MODEL, "model_versions": [version], "total_shards": 3, "scored": PERSONS}
    store = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=runtime.client("dynamodb"))
    profiles = list(store.scan_shard(0, 1))
    assert len(profiles) == PERSONS
    assert all(p.scores[MODEL].model_version == version for p in profiles)
    # And a single shard (a one-item Map) gives the same total
    status, totals = run(runtime, "score", {"model_name": MODEL, "total_shards": 1})
    assert (status, totals["scored"]) == ("SUCCEEDED", PERSONS)


def test_rejected_model_is_saved_but_not_promoted(runtime: LocalRuntime) -> None:
    # Given a bar no model can pass / When the train machine runs
    status, output = run(
        runtime, "train", {"model_name": "strict-model", "campaign_id": CAMPAIGN_ID, "window_days": 14, "min_auc": 1.0}
    )
    # Then it fails as ModelRejected, and no latest.json exists for that model
    assert status == "FAILED"
    assert output["error"] == "ModelRejected"
    listed = runtime.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/strict-model/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert keys and all(k.endswith(("model.joblib", "manifest.json")) for k in keys)
    assert latest_key("strict-model") not in keys


def test_bad_requests_and_unscoreable_models_fail_with_clear_errors(runtime: LocalRuntime) -> None:
    # Given a campaign nobody received / Then training fails (too few rows), not a silent empty model
    status, output = run(runtime, "train", {"model_name": "nobody", "campaign_id": "never-sent"})
    assert (status, output["error"]) == ("FAILED", "TrainingFailed")
    # Given a model that was never promoted / Then scoring fails
    status, output = run(runtime, "score", {"model_name": "never-trained", "total_shards": 2})
    assert (status, output["error"]) == ("FAILED", "ScoringFailed")


def test_tampered_promoted_model_stops_scoring(runtime: LocalRuntime) -> None:
    # Given a promoted model whose bytes are overwritten afterwards
    status, output = run(runtime, "train", {"model_name": "tampered", "campaign_id": CAMPAIGN_ID, "window_days": 14})
    assert status == "SUCCEEDED", output
    runtime.client("s3").put_object(Bucket=BUCKET, Key=model_key("tampered", output["version"]), Body=b"not a model")
    # When scored / Then the integrity check fails the run instead of unpickling unknown bytes
    status, output = run(runtime, "score", {"model_name": "tampered", "total_shards": 2})
    assert (status, output["error"]) == ("FAILED", "ScoringFailed")
