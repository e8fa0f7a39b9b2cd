"""The model registry API (cdp.app.model_api) on in-memory ports: the list, a model's versions and a version's report,
a rollback that records who did it and refuses what it should, and one person scored on demand, written with the
predictive tags that read the score, only for keys that hold the person's brand."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from cdp.app.campaign_api import InvalidBodyError
from cdp.app.model_api import MAX_BODY_BYTES, ModelApi, PromotionRefusedError
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError, PayloadTooLargeError
from cdp.ingest.auth import MODELS_PROMOTE_SCOPE, MODELS_READ_SCOPE, MODELS_SCORE_SCOPE, SCOPES
from cdp.ingest.ports import ApiClient
from cdp.models.artifact import ModelManifest, unpack
from cdp.models.kinds import VERSION_PATTERN
from cdp.models.labels import PersonHistory
from cdp.models.training import TrainRequest, train_model
from cdp.org import OrgDirectory, ScopeRef
from cdp.tags.catalog import bundled_catalog
from cdp.tags.ports import StaticAudiences
from cdp.tags.service import TagEngine
from tests.fakes.model_histories import BRAND, CAMPAIGN_ID, HORIZON, synthetic_histories
from tests.fakes.model_store import InMemoryModelStore
from tests.fakes.tags import InMemoryTagStore, RecordingPublisher

MODEL = "response"  # the bundled catalog's predictive tag reads this model's score
NOW = HORIZON + timedelta(days=3)
ADMIN = ApiClient("ops-admin", frozenset(SCOPES))
BRAND_KEY = ApiClient("acme-crm", frozenset({MODELS_SCORE_SCOPE, MODELS_READ_SCOPE}), ScopeRef(brand_id=BRAND))
STORE_KEY = ApiClient("acme-till", frozenset({MODELS_SCORE_SCOPE}), ScopeRef(brand_id=BRAND, store_id="sh01"))
OTHER_BRAND_KEY = ApiClient("outlet-crm", frozenset({MODELS_SCORE_SCOPE}), ScopeRef(brand_id="outlet"))
READER = ApiClient("analyst", frozenset({MODELS_READ_SCOPE}))


@dataclass(frozen=True)
class Registry:
    old: ModelManifest  # trained first
    promoted: ModelManifest  # trained next, promoted by the train machine
    rejected: ModelManifest  # trained last, rejected at training


@dataclass
class World:
    api: ModelApi
    store: InMemoryModelStore
    profiles: InMemoryTagStore
    publisher: RecordingPublisher
    registry: Registry
    histories: list[PersonHistory]


@pytest.fixture(scope="module")
def trained() -> tuple[list[PersonHistory], list[tuple[bytes, ModelManifest]]]:
    histories = synthetic_histories(200, seed=31).histories
    versions = []
    for days, algorithm, min_auc in (
        (0, "logistic_regression", 0.0),
        (1, "hist_gradient_boosting", 0.0),
        (2, None, 1.0),
    ):
        request = TrainRequest(
            model_name=MODEL, campaign_id=CAMPAIGN_ID, window_days=14, algorithm=algorithm, min_auc=min_auc
        )
        versions.append(train_model(request, histories, HORIZON + timedelta(days=days)))
    return histories, versions


@pytest.fixture
def world(trained: tuple[list[PersonHistory], list[tuple[bytes, ModelManifest]]]) -> World:
    histories, versions = trained
    store = InMemoryModelStore()
    for blob, manifest in versions:
        store.save(blob, manifest)
    old, promoted, rejected = (manifest for _, manifest in versions)
    assert (old.accepted, promoted.accepted, rejected.accepted) == (True, True, False)
    store.promote(MODEL, promoted.version, HORIZON + timedelta(days=1))  # the train machine's promotion
    profiles = InMemoryTagStore([h.profile for h in histories])
    for h in histories:
        profiles.add_events(h.profile.person_id, list(h.events))
    publisher = RecordingPublisher()
    engine = TagEngine(bundled_catalog(), StaticAudiences(), profiles, profiles, profiles, publisher)
    api = ModelApi(store, profiles, profiles, engine, OrgDirectory(), now=lambda: NOW)
    return World(api, store, profiles, publisher, Registry(old, promoted, rejected), histories)


def _body(**fields: Any) -> str:
    return json.dumps(fields)


# ---- the registry -------------------------------------------------------------------------------------------------


def test_the_versions_training_names_are_the_versions_the_api_accepts(world: World) -> None:
    # Given the versions `package` named at training / Then each matches the pattern the routes check
    for manifest in (world.registry.old, world.registry.promoted, world.registry.rejected):
        assert re.fullmatch(VERSION_PATTERN, manifest.version), manifest.version
        assert world.api.version(READER, MODEL, manifest.version).version == manifest.version


def test_the_list_names_each_model_with_its_promoted_version_and_headline(world: World) -> None:
    # When the registry is listed
    (summary,) = world.api.models(READER).models
    # Then the model shows the version the train machine promoted, with that version's headline
    assert (summary.model_name, summary.kind, summary.versions) == (MODEL, "response", 3)
    assert summary.newest_version == world.registry.rejected.version
    assert summary.promoted is not None and summary.promoted.version == world.registry.promoted.version
    assert summary.promoted.promoted_by is None  # the train state machine
    assert summary.headline is not None and summary.headline.version == world.registry.promoted.version
    assert summary.headline.metric == "held-out ROC AUC" and summary.headline.accepted
    assert summary.headline.value == world.registry.promoted.metrics.held_out.roc_auc  # type: ignore[union-attr]
    assert summary.headline.interval is not None and summary.headline.baseline_value is not None
    assert summary.problem is None


def test_the_list_reads_each_saved_manifest_once_and_every_pointer_each_time(world: World) -> None:
    # Given the store's manifest reads counted
    reads: list[tuple[str, str]] = []
    manifest = world.store.manifest

    def counted(model_name: str, version: str) -> ModelManifest:
        reads.append((model_name, version))
        return manifest(model_name, version)

    world.store.manifest = counted  # type: ignore[method-assign]
    # When the registry is listed twice, and the model's versions read
    first = world.api.models(READER).models
    again = world.api.models(READER).models
    world.api.model(READER, MODEL)
    world.api.model(READER, MODEL)
    # Then each version's manifest was read from the store once (a saved manifest never changes)
    assert again == first
    registry = world.registry
    assert sorted(reads) == sorted((MODEL, m.version) for m in (registry.old, registry.promoted, registry.rejected))
    # And a rollback shows at once: the pointer is read on every list
    world.store.promote(MODEL, world.registry.old.version, NOW)
    (summary,) = world.api.models(READER).models
    assert summary.promoted is not None and summary.promoted.version == world.registry.old.version
    assert summary.headline is not None and summary.headline.version == world.registry.old.version


def test_a_pointer_to_a_missing_version_is_named_in_the_list_not_a_failed_list(world: World) -> None:
    # Given a second model whose latest.json names a version whose manifest is gone
    pointer = world.store.pointers[MODEL].model_copy(update={"model_name": "churn", "version": "20200101T000000Z-0"})
    world.store.pointers["churn"] = pointer
    # When the registry is listed / Then both models are there; the broken one says why it has no headline
    churn, response = world.api.models(READER).models
    assert (churn.model_name, churn.headline, churn.versions) == ("churn", None, 0)
    assert churn.problem is not None and "has no version" in churn.problem
    assert response.headline is not None and response.problem is None


def test_a_model_lists_its_versions_newest_first_and_marks_the_promoted_one(world: World) -> None:
    reg = world.registry
    # When the model is read, then with a limit
    detail = world.api.model(READER, MODEL)
    # Then every version is there, newest first, each with its headline; only one is the promoted one
    assert [v.version for v in detail.versions] == [reg.rejected.version, reg.promoted.version, reg.old.version]
    assert [v.promoted for v in detail.versions] == [False, True, False]
    assert detail.versions[0].headline.notes[: len(reg.rejected.rejected_because)] == reg.rejected.rejected_because
    assert detail.total == 3 and detail.promoted is not None
    newest = world.api.model(READER, MODEL, "1")
    assert ([v.version for v in newest.versions], newest.total) == ([reg.rejected.version], 3)
    # And bad names and limits are a 400 naming the field; an unknown model is a 404
    for name, limit, field in (("Bad-Name", None, "model_name"), (MODEL, "0", "limit"), (MODEL, "1e3", "limit")):
        with pytest.raises(InvalidInputError) as bad:
            world.api.model(READER, name, limit)
        assert bad.value.location == field
    with pytest.raises(NotFoundError, match="no model churn"):
        world.api.model(READER, "churn")


def test_a_version_report_is_its_whole_manifest_with_the_label_in_words(world: World) -> None:
    reg = world.registry
    # When the rejected version's report is read
    report = world.api.version(READER, MODEL, reg.rejected.version)
    # Then it carries everything training recorded, and says why it was rejected
    assert report.manifest == reg.rejected and not report.promoted
    assert report.label == f"order within 14 days after delivery of campaign {CAMPAIGN_ID}"
    assert report.manifest.rejected_because and report.manifest.feature_names
    assert report.manifest.sha256 and report.manifest.sklearn_version
    assert world.api.version(READER, MODEL, reg.promoted.version).promoted
    # And an unknown version of a known model, or an unknown model, is a 404; a malformed version a 400
    with pytest.raises(NotFoundError, match="has no version"):
        world.api.version(READER, MODEL, "20200101T000000Z-00000000")
    with pytest.raises(NotFoundError, match="no model churn"):
        world.api.version(READER, "churn", reg.promoted.version)
    with pytest.raises(InvalidInputError) as bad:
        world.api.version(READER, MODEL, "../latest.json")
    assert bad.value.location == "version"


def test_the_registry_is_for_keys_without_an_org_scope_holding_the_scope(world: World) -> None:
    # Given a brand-scoped key with models:read, and an unscoped key without models:promote
    # Then neither reads or rolls back: the registry serves every brand
    with pytest.raises(ForbiddenError, match="every brand"):
        world.api.models(BRAND_KEY)
    with pytest.raises(ForbiddenError, match=MODELS_PROMOTE_SCOPE):
        world.api.rollback(READER, MODEL, _body(version=world.registry.old.version))
    assert world.store.latest(MODEL).version == world.registry.promoted.version  # type: ignore[union-attr]


# ---- rollback -----------------------------------------------------------------------------------------------------


def test_a_rollback_points_latest_at_the_earlier_version_and_records_who(world: World) -> None:
    reg = world.registry
    # When the administrator rolls back to the version before
    result = world.api.rollback(ADMIN, MODEL, _body(version=reg.old.version))
    # Then latest points at it, with who did it and when; the answer says what was promoted before and after
    assert (result.version, result.previous_version, result.forced) == (reg.old.version, reg.promoted.version, False)
    assert (result.promoted_by, result.promoted_at) == (ADMIN.name, NOW)
    pointer = world.store.latest(MODEL)
    assert pointer is not None and (pointer.version, pointer.promoted_by, pointer.promoted_at) == (
        reg.old.version,
        ADMIN.name,
        NOW,
    )
    listed = world.api.models(READER).models[0]
    assert listed.promoted is not None and listed.promoted.promoted_by == ADMIN.name
    # And the version promoted before can be promoted again the same way (a rollback is undone)
    again = world.api.rollback(ADMIN, MODEL, _body(version=reg.promoted.version))
    assert (again.version, again.previous_version) == (reg.promoted.version, reg.old.version)


def test_a_rollback_refuses_the_promoted_and_the_rejected_version_unless_forced(world: World) -> None:
    reg = world.registry
    # Given the promoted version / When it is asked for again / Then 409 already_promoted; forced, it is recorded
    with pytest.raises(PromotionRefusedError) as refused:
        world.api.rollback(ADMIN, MODEL, _body(version=reg.promoted.version))
    assert refused.value.reason == "already_promoted"
    assert world.api.rollback(ADMIN, MODEL, _body(version=reg.promoted.version, force=True)).forced
    # Given a version rejected at training / Then 409 naming why, unless forced
    with pytest.raises(PromotionRefusedError) as refused:
        world.api.rollback(ADMIN, MODEL, _body(version=reg.rejected.version))
    assert refused.value.reason == "rejected_at_training" and "below the bar" in str(refused.value)
    assert world.store.latest(MODEL).version == reg.promoted.version  # type: ignore[union-attr]
    forced = world.api.rollback(ADMIN, MODEL, _body(version=reg.rejected.version, force=True))
    assert forced.version == reg.rejected.version and forced.forced


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (None, InvalidInputError, "body"),
        ("{not json", InvalidInputError, "body"),
        ("[1, 2]", InvalidInputError, "body"),
        ("{}", InvalidBodyError, "version"),
        (_body(version="v1"), InvalidBodyError, "version"),
        (_body(version=20260101), InvalidBodyError, "version"),
        (_body(version="20260630T120000Z-0123abcd", force="yes"), InvalidBodyError, "force"),
        (_body(version="20260630T120000Z-0123abcd", extra=1), InvalidBodyError, "extra"),
        ("[" * 40 + "]" * 40, InvalidInputError, "body"),
        (_body(version="x" * (MAX_BODY_BYTES + 1)), PayloadTooLargeError, "body"),
    ],
)
def test_bad_rollback_bodies_name_their_field(world: World, body: str | None, error: type, field: str) -> None:
    # When a rollback's body is missing, not JSON, too deep or too big, or names no proper version
    with pytest.raises(error) as bad:
        world.api.rollback(ADMIN, MODEL, body)
    # Then the error names the field, and latest has not moved
    assert bad.value.location == field
    assert world.store.latest(MODEL).version == world.registry.promoted.version  # type: ignore[union-attr]


def test_a_rollback_of_an_unknown_model_or_version_is_a_404(world: World) -> None:
    with pytest.raises(NotFoundError, match="no model churn"):
        world.api.rollback(ADMIN, "churn", _body(version=world.registry.old.version))
    with pytest.raises(NotFoundError, match="has no version"):
        world.api.rollback(ADMIN, MODEL, _body(version="20200101T000000Z-00000000"))


# ---- one person scored now ----------------------------------------------------------------------------------------


def test_a_person_is_scored_with_the_promoted_version_and_written_with_their_predictive_tags(world: World) -> None:
    person = world.histories[7].profile.person_id
    writes = world.profiles.writes
    # When one person is scored on demand
    result = world.api.score(ADMIN, MODEL, _body(person_id=person))
    # Then the promoted version scored them, as its own predict would, and the score is on the profile
    expected = unpack(world.store.blobs[(MODEL, world.registry.promoted.version)], world.registry.promoted)
    (prediction,) = expected.predict_people([world.histories[7]], NOW)
    assert (result.person_id, result.brand_id, result.kind) == (person, BRAND, "response")
    assert result.model_version == world.registry.promoted.version and result.written
    assert result.score == pytest.approx(prediction.score) and result.scored_at == NOW
    stored = world.profiles.profiles[person].scores[MODEL]
    assert (stored.score, stored.model_version) == (result.score, result.model_version)
    # And in one write with the predictive tag reading it, which the answer and the bus both report
    assert world.profiles.writes == writes + 1
    (change,) = result.tag_changes
    assert (change.tag, change.old) == ("response_propensity", None)
    assert world.profiles.profiles[person].tags["response_propensity"].value == change.new
    assert world.publisher.names() == ["tags.changed"]
    # And scored again at once, nothing moves but the score
    assert world.api.score(ADMIN, MODEL, _body(person_id=person)).tag_changes == []


def test_a_person_changed_since_the_read_gets_the_score_then_the_tags_that_follow_it(world: World) -> None:
    # Given a concurrent writer that moves the person's tags between the read and the write
    person = world.histories[11].profile.person_id
    world.profiles.interfere = 1
    # When the person is scored
    result = world.api.score(ADMIN, MODEL, _body(person_id=person))
    assert world.profiles.interfere == 0  # the version-checked write of score and tags was refused once
    # Then the score is written alone, the tags follow it (as refresh_scored does for a shard), and both are reported
    assert world.profiles.profiles[person].scores[MODEL].model_version == result.model_version
    assert [c.tag for c in result.tag_changes] == ["response_propensity"]
    assert world.profiles.profiles[person].tags["response_propensity"].value == result.tag_changes[0].new


def test_write_false_answers_the_score_and_stores_nothing(world: World) -> None:
    person = world.histories[3].profile.person_id
    result = world.api.score(ADMIN, MODEL, _body(person_id=person, write=False))
    assert not result.written and result.tag_changes == []
    assert world.profiles.profiles[person].scores == {} and world.profiles.writes == 0
    assert world.publisher.published == []


def test_after_a_rollback_the_person_is_scored_by_the_rolled_back_version(world: World) -> None:
    # Given a rollback to the earlier version
    world.api.rollback(ADMIN, MODEL, _body(version=world.registry.old.version))
    # When a person is scored / Then by that version
    result = world.api.score(ADMIN, MODEL, _body(person_id=world.histories[0].profile.person_id))
    assert result.model_version == world.registry.old.version
    assert world.profiles.profiles[result.person_id].scores[MODEL].model_version == world.registry.old.version


def test_a_person_is_found_by_an_identifier_of_their_brand(world: World) -> None:
    # Given a person holding a device id in the brand
    profile = world.histories[5].profile
    world.profiles.profiles[profile.person_id] = profile.model_copy(update={"identifiers": ["device_id:dev-x5"]})
    identifier = {"type": "device_id", "value": "dev-x5"}
    # When scored by that identifier with the brand's key (its brand is the lookup's) / Then that person
    assert world.api.score(BRAND_KEY, MODEL, _body(identifier=identifier)).person_id == profile.person_id
    # And an unknown identifier is a 404; an unscoped key must name the brand; a wrong type names its field
    with pytest.raises(NotFoundError):
        world.api.score(BRAND_KEY, MODEL, _body(identifier={"type": "device_id", "value": "dev-nobody"}))
    with pytest.raises(InvalidInputError) as bad:
        world.api.score(ADMIN, MODEL, _body(identifier=identifier))
    assert bad.value.location == "brand_id"
    assert world.api.score(ADMIN, MODEL, _body(identifier=identifier, brand_id=BRAND)).person_id == profile.person_id
    with pytest.raises(InvalidInputError) as bad:
        world.api.score(ADMIN, MODEL, _body(identifier={"type": "fax", "value": "1"}, brand_id=BRAND))
    assert bad.value.location == "identifier.type"


def test_only_a_key_holding_the_persons_brand_scores_them(world: World) -> None:
    person = world.histories[9].profile.person_id
    # Given keys of another brand, of one store of the person's brand, and without models:score
    # Then the other brand's is told no such person (as the profile API does), the store's is forbidden
    with pytest.raises(NotFoundError):
        world.api.score(OTHER_BRAND_KEY, MODEL, _body(person_id=person))
    with pytest.raises(ForbiddenError, match="holds brand"):
        world.api.score(STORE_KEY, MODEL, _body(person_id=person))
    with pytest.raises(ForbiddenError, match=MODELS_SCORE_SCOPE):
        world.api.score(READER, MODEL, _body(person_id=person))
    # And naming another brand than the person's is a 404 too; the brand's own key scores them
    with pytest.raises(NotFoundError):
        world.api.score(ADMIN, MODEL, _body(person_id=person, brand_id="outlet"))
    assert world.profiles.profiles[person].scores == {}
    assert world.api.score(BRAND_KEY, MODEL, _body(person_id=person)).written


@pytest.mark.parametrize(
    ("name", "body", "error", "field"),
    [
        ("Response", _body(person_id="p00001"), InvalidInputError, "model_name"),
        (MODEL, "{}", InvalidBodyError, "(document)"),
        (MODEL, _body(person_id="p00001", identifier={"type": "phone", "value": "1"}), InvalidBodyError, "(document)"),
        (MODEL, _body(person_id=""), InvalidBodyError, "person_id"),
        (MODEL, _body(person_id=7), InvalidBodyError, "person_id"),
        (MODEL, _body(person_id="p00001", write="no"), InvalidBodyError, "write"),
        (MODEL, _body(identifier={"type": "phone"}, brand_id="acme"), InvalidBodyError, "identifier.value"),
        (MODEL, _body(person_id="p00001", brand_id="a b"), InvalidBodyError, "brand_id"),
        (MODEL, '{"person_id": "p1", "write": NaN}', InvalidInputError, "body"),
        (MODEL, _body(person_id="p" * (MAX_BODY_BYTES + 1)), PayloadTooLargeError, "body"),
    ],
)
def test_bad_score_requests_name_their_field(world: World, name: str, body: str, error: type, field: str) -> None:
    with pytest.raises(error) as bad:
        world.api.score(ADMIN, name, body)
    assert bad.value.location == field
    assert world.profiles.writes == 0


def test_unknown_models_and_persons_and_unpromoted_models_are_404(world: World) -> None:
    with pytest.raises(NotFoundError, match="no model churn"):
        world.api.score(ADMIN, "churn", _body(person_id="p00001"))
    with pytest.raises(NotFoundError, match="no person nobody"):
        world.api.score(ADMIN, MODEL, _body(person_id="nobody"))
    # Given a model saved but never promoted / Then scoring with it is a 404 that says so
    blob = world.store.blobs[(MODEL, world.registry.old.version)]
    manifest = world.registry.old.model_copy(update={"model_name": "draft"})
    world.store.save(blob, manifest)
    with pytest.raises(NotFoundError, match="no promoted version"):
        world.api.score(ADMIN, "draft", _body(person_id="p00001"))
