"""The model registry API end to end on the local runtime: versions trained by the real train state machine, then the
routes called as API Gateway calls them (the handler, S3 and DynamoDB under moto): the reports, a rollback recorded in
`latest.json`, one person scored by the rolled-back version and stored with their predictive tag, the same person
found by phone, and the CLI over a served API. Hostile input on every route gets a 4xx naming its field, never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cdp import topology
from cdp.models.store import latest_key, model_key
from cdp.tags.dynamodb import DynamoTagStore
from cdp_local.cli import app
from cdp_local.cli_profile import console as cli_console
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime.core import LocalRuntime
from tests.fakes.model_histories import BRAND, CAMPAIGN_ID, seed_profiles_table, synthetic_histories

PERSONS = 100
MODEL = "response"  # the bundled catalog's predictive tag reads this model's score
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
PHONE = "13911112222"
KEYS = {
    "it-promoter-key": {"client": "ml-ops", "scopes": ["models:read", "models:promote"]},
    "it-acme-scorer-key": {"client": "acme-crm", "scopes": ["models:score"], "scope": {"brand_id": BRAND}},
    "it-acme-reader-key": {"client": "acme-analyst", "scopes": ["models:read"], "scope": {"brand_id": BRAND}},
    "it-outlet-scorer-key": {"client": "outlet-crm", "scopes": ["models:score"], "scope": {"brand_id": "outlet"}},
    "it-profiles-key": {"client": "profiles-only", "scopes": ["profiles:read"]},
}


@dataclass(frozen=True)
class Trained:
    runtime: LocalRuntime
    first: str  # trained first (logistic regression), promoted, then replaced
    second: str  # trained next, promoted by the machine
    rejected: str  # held to a bar nothing passes: saved, never promoted
    person: str  # a seeded person


def _train(rt: LocalRuntime, **request: Any) -> tuple[str, Any]:
    payload = {"model_name": MODEL, "campaign_id": CAMPAIGN_ID, "window_days": 14, **request}
    status, output = rt.wait_execution(rt.start_execution(topology.TRAIN_MACHINE.key, payload), timeout=120)
    return status, output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    keys_file = tmp_path_factory.mktemp("keys") / "api_keys.json"
    keys_file.write_text(json.dumps({"keys": KEYS}), encoding="utf-8")
    with LocalRuntime(api_keys_file=str(keys_file), state_machines={topology.TRAIN_MACHINE.key}) as rt:
        histories = synthetic_histories(PERSONS, seed=21).histories
        seed_profiles_table(rt.client("dynamodb"), histories)
        # Given two versions the train machine promoted in turn, and a third it rejected
        status, first = _train(rt, algorithm="logistic_regression")
        assert status == "SUCCEEDED", first
        status, second = _train(rt, algorithm="hist_gradient_boosting", min_auc=0.5)
        assert status == "SUCCEEDED", second
        status, rejected = _train(rt, algorithm="logistic_regression", min_auc=1.0, seed=7)
        assert (status, rejected["error"]) == ("FAILED", "ModelRejected")
        listed = rt.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"models/{MODEL}/")
        versions = sorted({k["Key"].split("/")[2] for k in listed["Contents"] if k["Key"].endswith("manifest.json")})
        assert len(versions) == 3 and first["train"]["version"] in versions and second["train"]["version"] in versions
        (rejected_version,) = set(versions) - {first["train"]["version"], second["train"]["version"]}
        # And a person the pipeline made from an event, whom only their phone names
        identify = {
            "event_id": "it-model-api-person",
            "event_type": "identify",
            "source": "app",
            "brand_id": BRAND,
            "occurred_at": "2026-06-01T10:00:00+08:00",
            "identifiers": [{"type": "phone", "value": PHONE}],
        }
        sent = {"content-type": "application/json", "x-api-key": rt.api_key}
        assert rt.http("POST", "/v1/events", json.dumps(identify).encode(), sent).status == 202
        rt.drain()
        yield Trained(
            rt, first["train"]["version"], second["train"]["version"], rejected_version, histories[4].profile.person_id
        )


def _call(rt: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = "admin") -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = rt.admin_key if key == "admin" else key
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    status, _, payload = rt.http(method, path, raw, headers)
    return status, json.loads(payload or b"null")


def _latest(rt: LocalRuntime) -> dict[str, Any]:
    return dict(json.loads(rt.client("s3").get_object(Bucket=BUCKET, Key=latest_key(MODEL))["Body"].read()))


# ---- the routes ---------------------------------------------------------------------------------------------------


def test_the_registry_reads_what_training_recorded(trained: Trained) -> None:
    rt = trained.runtime
    # When the models are listed / Then the model shows the version the machine promoted last, with its headline
    status, listed = _call(rt, "GET", "/v1/models")
    assert status == 200, listed
    (model,) = [m for m in listed["models"] if m["model_name"] == MODEL]
    assert model["promoted"]["version"] == trained.second and model["promoted"]["promoted_by"] is None
    assert model["headline"]["metric"] == "held-out ROC AUC" and model["headline"]["accepted"] is True
    assert model["versions"] == 3 and model["newest_version"] == trained.rejected
    # When the model is read / Then its versions newest first, the promoted one marked
    status, detail = _call(rt, "GET", f"/v1/models/{MODEL}")
    assert status == 200, detail
    assert [v["version"] for v in detail["versions"]] == [trained.rejected, trained.second, trained.first]
    assert [v["promoted"] for v in detail["versions"]] == [False, True, False]
    # When the rejected version's report is read / Then the whole manifest: why, rows, features, library, hash
    status, report = _call(rt, "GET", f"/v1/models/{MODEL}/versions/{trained.rejected}")
    assert status == 200, report
    manifest = report["manifest"]
    assert manifest["rejected_because"] and not manifest["accepted"] and report["promoted"] is False
    assert manifest["metrics"]["train_rows"] > 0 and manifest["metrics"]["held_out"]["rows"] > 0
    assert len(manifest["feature_names"]) > 10 and manifest["sklearn_version"] and len(manifest["sha256"]) == 64
    assert manifest["label"]["window_days"] == 14 and "within 14 days" in report["label"]


def test_rollback_then_score_uses_the_rolled_back_version_and_stores_it_with_the_tags(trained: Trained) -> None:
    rt = trained.runtime
    # When the operator's key rolls back to the first version
    status, result = _call(rt, "POST", f"/v1/models/{MODEL}/rollback", {"version": trained.first}, "it-promoter-key")
    # Then latest.json names it, who did it and when; the answer says what was promoted before
    assert status == 200, result
    assert (result["version"], result["previous_version"]) == (trained.first, trained.second)
    pointer = _latest(rt)
    assert (pointer["version"], pointer["promoted_by"]) == (trained.first, "ml-ops")
    # When a seeded person is scored now by the brand's key
    status, scored = _call(rt, "POST", f"/v1/models/{MODEL}/score", {"person_id": trained.person}, "it-acme-scorer-key")
    # Then by the rolled-back version, stored on the profile with the predictive tag that reads it
    assert status == 200, scored
    assert scored["model_version"] == trained.first and scored["written"] is True
    assert [c["tag"] for c in scored["tag_changes"]] == ["response_propensity"]
    profile = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb")).get(trained.person)
    assert profile is not None
    assert (profile.scores[MODEL].model_version, profile.scores[MODEL].score) == (trained.first, scored["score"])
    assert profile.tags["response_propensity"].value == scored["tag_changes"][0]["new"]
    # And the person the pipeline made is found by their phone in the brand, and scored without being stored
    status, by_phone = _call(
        rt,
        "POST",
        f"/v1/models/{MODEL}/score",
        {"identifier": {"type": "phone", "value": PHONE}, "write": False},
        "it-acme-scorer-key",
    )
    assert status == 200, by_phone
    assert by_phone["brand_id"] == BRAND and by_phone["written"] is False and by_phone["tag_changes"] == []
    stored = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb")).get(by_phone["person_id"])
    assert stored is not None and MODEL not in stored.scores
    # And after the rollback is undone, the next score is by the version promoted again
    status, _ = _call(rt, "POST", f"/v1/models/{MODEL}/rollback", {"version": trained.second}, "it-promoter-key")
    assert status == 200
    status, again = _call(rt, "POST", f"/v1/models/{MODEL}/score", {"person_id": trained.person})
    assert (status, again["model_version"]) == (200, trained.second)


# ---- hostile input: a 4xx naming the field, never a 5xx -----------------------------------------------------------

ROLLBACK = f"/v1/models/{MODEL}/rollback"
SCORE = f"/v1/models/{MODEL}/score"
HOSTILE: list[tuple[str, str, Any, str | None, int, str | None]] = [
    # (method, path, body, key, status, field)
    ("GET", "/v1/models", None, None, 401, None),
    ("GET", "/v1/models", None, "it-profiles-key", 403, None),
    ("GET", "/v1/models", None, "it-acme-reader-key", 403, None),  # the registry serves every brand
    ("GET", "/v1/models/Not-A-Name", None, "admin", 400, "model_name"),
    ("GET", "/v1/models/%2E%2E%2Fraw", None, "admin", 400, "model_name"),
    ("GET", f"/v1/models/{'x' * 70}", None, "admin", 400, "model_name"),
    ("GET", "/v1/models/never_trained", None, "admin", 404, None),
    ("GET", f"/v1/models/{MODEL}?limit=0", None, "admin", 400, "limit"),
    ("GET", f"/v1/models/{MODEL}?limit=%00", None, "admin", 400, "limit"),
    ("GET", f"/v1/models/{MODEL}/versions/latest.json", None, "admin", 400, "version"),
    ("GET", f"/v1/models/{MODEL}/versions/20200101T000000Z-00000000", None, "admin", 404, None),
    ("GET", "/v1/models/never_trained/versions/20200101T000000Z-00000000", None, "admin", 404, None),
    ("POST", ROLLBACK, None, "admin", 400, "body"),
    ("POST", ROLLBACK, b"{not json", "admin", 400, "body"),
    ("POST", ROLLBACK, b"\xff\xfe{}", "admin", 400, "body"),
    ("POST", ROLLBACK, b"[" * 100 + b"]" * 100, "admin", 400, "body"),
    ("POST", ROLLBACK, {}, "admin", 422, "version"),
    ("POST", ROLLBACK, {"version": ["x"]}, "admin", 422, "version"),
    ("POST", ROLLBACK, {"version": "20200101T000000Z-00000000", "force": "true"}, "admin", 422, "force"),
    ("POST", ROLLBACK, {"version": "x" * 20_000}, "admin", 413, "body"),
    ("POST", ROLLBACK, {"version": "20200101T000000Z-00000000"}, "admin", 404, None),
    ("POST", "/v1/models/never_trained/rollback", {"version": "20200101T000000Z-00000000"}, "admin", 404, None),
    ("POST", ROLLBACK, {"version": "20200101T000000Z-00000000"}, "it-acme-scorer-key", 403, None),
    ("POST", SCORE, {}, "admin", 422, "(document)"),
    ("POST", SCORE, {"person_id": None, "identifier": None}, "admin", 422, "(document)"),
    ("POST", SCORE, b'{"person_id": "x", "write": 1e400}', "admin", 422, "write"),
    ("POST", SCORE, b'{"person_id": "x", "write": NaN}', "admin", 400, "body"),
    ("POST", SCORE, b'{"person_id": "\\ud800"}', "admin", 422, "person_id"),  # a lone surrogate
    ("POST", SCORE, {"person_id": "x" * 200}, "admin", 422, "person_id"),
    ("POST", SCORE, {"identifier": {"type": "phone", "value": "1"}}, "admin", 400, "brand_id"),
    ("POST", SCORE, {"identifier": {"type": "fax", "value": "1"}, "brand_id": BRAND}, "admin", 400, "identifier.type"),
    (
        "POST",
        SCORE,
        {"identifier": {"type": "phone", "value": "abc"}, "brand_id": BRAND},
        "admin",
        400,
        "identifier.value",
    ),
    ("POST", SCORE, {"person_id": "nobody-at-all"}, "admin", 404, None),
    ("POST", "/v1/models/never_trained/score", {"person_id": "nobody-at-all"}, "admin", 404, None),
    ("POST", "/v1/models/Bad/score", {"person_id": "x"}, "admin", 400, "model_name"),
]


@pytest.mark.parametrize(("method", "path", "body", "key", "status", "field"), HOSTILE)
def test_hostile_input_on_the_model_routes_is_a_4xx_naming_its_field(
    trained: Trained, method: str, path: str, body: Any, key: str | None, status: int, field: str | None
) -> None:
    rt = trained.runtime
    before = _latest(rt)
    # When the hostile request is sent / Then the documented 4xx, naming the field where there is one
    got, answer = _call(rt, method, path, body, key)
    assert got == status, answer
    if field is not None:
        assert answer["field"] == field, answer
    # And latest.json has not moved
    assert _latest(rt) == before


def test_conflicting_rollbacks_and_other_brands_are_refused(trained: Trained) -> None:
    rt = trained.runtime
    promoted = _latest(rt)["version"]
    # Given the promoted version, and a rejected one / Then 409 each, with the reason as the error
    status, answer = _call(rt, "POST", ROLLBACK, {"version": promoted})
    assert (status, answer["error"]) == (409, "already_promoted")
    status, answer = _call(rt, "POST", ROLLBACK, {"version": trained.rejected})
    assert (status, answer["error"]) == (409, "rejected_at_training") and "below the bar" in answer["message"]
    assert _latest(rt)["version"] == promoted
    # And another brand's key does not see the person (404, as for an unknown one)
    status, _ = _call(rt, "POST", SCORE, {"person_id": trained.person}, "it-outlet-scorer-key")
    assert status == 404


def test_a_version_whose_bytes_fail_their_hash_is_never_promoted(trained: Trained) -> None:
    rt = trained.runtime
    s3 = rt.client("s3")
    key = model_key(MODEL, trained.first)
    original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    before = _latest(rt)
    # Given the first version's bytes overwritten after training
    s3.put_object(Bucket=BUCKET, Key=key, Body=original + b"\x00")
    try:
        # When it is rolled back to, even forced / Then 409 model_integrity, and latest.json has not moved
        status, answer = _call(rt, "POST", ROLLBACK, {"version": trained.first, "force": True})
        assert (status, answer["error"]) == (409, "model_integrity") and "sha256" in answer["message"]
        assert _latest(rt) == before
    finally:
        s3.put_object(Bucket=BUCKET, Key=key, Body=original)


# ---- the CLI over a served API ------------------------------------------------------------------------------------


def test_the_cli_lists_shows_rolls_back_and_scores(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = trained.runtime
    # the CLI's console took its width when it was imported (80 without a terminal): wide enough for the tables
    monkeypatch.setattr(cli_console, "width", 250)
    with LocalApiServer(rt, port=0) as server:

        def cdp(*args: str) -> Any:
            return CliRunner().invoke(app, [*args, "--url", server.url], catch_exceptions=False)

        listed = cdp("model", "list")
        assert listed.exit_code == 0, listed.output
        assert MODEL in listed.output and "held-out ROC AUC" in listed.output
        shown = cdp("model", "show", MODEL)
        assert shown.exit_code == 0, shown.output
        assert trained.first in shown.output and trained.rejected in shown.output
        report = cdp("model", "show", MODEL, "--version", trained.rejected)
        assert report.exit_code == 0, report.output
        assert "rejected:" in report.output and "sha256" in report.output
        refused = cdp("model", "rollback", MODEL, trained.rejected)
        assert refused.exit_code == 1 and "409 rejected_at_training" in refused.output
        forced = cdp("model", "rollback", MODEL, trained.rejected, "--force")
        assert (
            forced.exit_code == 0 and f"latest is {trained.rejected}" in forced.output and "(forced)" in forced.output
        )
        scored = cdp("model", "score", MODEL, "--phone", PHONE, "--brand", BRAND, "--json")
        assert scored.exit_code == 0, scored.output
        assert json.loads(scored.output)["model_version"] == trained.rejected
        assert cdp("model", "score", MODEL).exit_code == 2  # nobody named
        back = cdp("model", "rollback", MODEL, trained.second)
        assert back.exit_code == 0, back.output
