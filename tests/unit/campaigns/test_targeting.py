"""Budget-aware targeting: expected incremental profit, the pick under the budget, and the evidence that chooses the
ranking (the uplift model's held-out comparison), through the select step and its audience manifest."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cdp.campaigns.lifecycle import CampaignInvalidError, parse_definition
from cdp.campaigns.models import AudienceDocument, Member
from cdp.campaigns.service import audience_key, rank_key, select_audience
from cdp.campaigns.targeting import ManifestValidations, RankingValidation, Targeting, choose, expected_profit
from cdp.models.keys import manifest_key
from cdp.profile.models import ModelScore, Profile
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.fakes.objects import InMemoryObjectStore
from tests.fakes.profiles import InMemoryProfiles
from tests.unit.campaigns.conftest import T0, ProfileFactory, RequestFactory

UPLIFT = Targeting(ranking="uplift", uplift_model="sms_uplift", margin_minor=3000, offer_cost_minor=500)


def member(pid: str, response: float, uplift: float | None, treated: float | None = None) -> Member:
    return Member(person_id=pid, score=response, uplift=uplift, p_treated=treated)


class Fixed:
    """A validation source that answers the same for every share."""

    def __init__(self, preferred: str | None) -> None:
        self.preferred = preferred
        self.asked: list[tuple[str, str, float]] = []

    def validation(self, model_name: str, version: str, share: float) -> RankingValidation | None:
        self.asked.append((model_name, version, share))
        if self.preferred is None:
            return None
        return RankingValidation(
            model_name=model_name,
            model_version=version,
            share=0.2,
            preferred=self.preferred,
            verdict="held out says so",
        )


def test_expected_profit_is_uplift_times_margin_less_message_and_offer_cost() -> None:
    # 0.10 x 3000 - 5 - 500 x 0.40 = 95; without P(treated) the offer counts on the caused orders only
    assert expected_profit(member("a", 0.5, 0.10, 0.40), UPLIFT, 5) == pytest.approx(95.0)
    assert expected_profit(member("b", 0.5, 0.10), UPLIFT, 5) == pytest.approx(300 - 5 - 50)
    assert expected_profit(member("c", 0.9, None), UPLIFT, 5) is None


def test_uplift_ranking_skips_sure_things_and_loss_makers_within_the_budget() -> None:
    # Given sure things (buy anyway: high response, no uplift), persuadables, and a person who dislikes messages
    pool = [
        member("sure-1", 0.90, 0.00, 0.90),
        member("sure-2", 0.85, 0.01, 0.85),
        member("pers-1", 0.30, 0.25, 0.30),
        member("pers-2", 0.25, 0.20, 0.25),
        member("pers-3", 0.20, 0.15, 0.20),
        member("sleeping-dog", 0.60, -0.10, 0.50),
        member("unscored", 0.70, None),
    ]
    # When 2 persons are affordable and uplift ranking is asked for
    picked, report = choose(pool, 2, UPLIFT, 5, rank_key, "v1", None)
    # Then the two most profitable persuadables are picked, response would have picked the sure things
    assert [m.person_id for m in picked] == ["pers-1", "pers-2"]
    assert report.used == "uplift" and report.requested == "uplift"
    assert report.response.persons == 2 and report.response.expected_incremental_conversions == pytest.approx(0.01)
    assert report.uplift.expected_incremental_conversions == pytest.approx(0.45)
    assert report.uplift.expected_incremental_profit_minor > report.response.expected_incremental_profit_minor
    assert report.reach_share == pytest.approx(2 / 7)
    # And a budget larger than the profitable persons reaches only those with a positive expected profit
    picked, report = choose(pool, 10, UPLIFT, 5, rank_key, "v1", None)
    assert [m.person_id for m in picked] == ["pers-1", "pers-2", "pers-3"]
    assert report.response.without_uplift_score == 1


@pytest.mark.parametrize(
    ("preferred", "used", "reason"),
    [
        ("uplift", "uplift", "held out says so"),
        ("response", "response", "held out says so"),
        (None, "response", "no held-out comparison on record for sms_uplift v7"),
    ],
)
def test_auto_follows_the_held_out_comparison_and_falls_back_to_response(
    preferred: str | None, used: str, reason: str
) -> None:
    pool = [member("sure", 0.9, 0.0, 0.9), member("pers", 0.3, 0.3, 0.3), member("other", 0.1, 0.01, 0.1)]
    source = Fixed(preferred)
    auto = UPLIFT.model_copy(update={"ranking": "auto"})
    picked, report = choose(pool, 1, auto, 5, rank_key, "v7", source)
    assert report.used == used and reason in report.reason
    assert [m.person_id for m in picked] == (["pers"] if used == "uplift" else ["sure"])
    assert source.asked == [("sms_uplift", "v7", pytest.approx(1 / 3))]
    # And nobody scored by the uplift model: response, without asking (even when the definition asks for uplift)
    for asked in (auto, UPLIFT):
        picked, report = choose([member("x", 0.5, None)], 1, asked, 5, rank_key, None, source)
        assert report.used == "response" and "nobody eligible has a sms_uplift score" in report.reason
        assert [m.person_id for m in picked] == ["x"]


def test_the_validation_is_read_from_the_uplift_models_manifest_at_the_nearest_share() -> None:
    objects = InMemoryObjectStore()
    shares = [
        {"share": 0.1, "preferred": "uplift", "verdict": "uplift wins at 10%"},
        {"share": 0.3, "preferred": "response", "verdict": "not distinguishable at 30%: use response"},
    ]
    manifest = {"metrics": {"kind": "uplift", "held_out": {"comparison": {"shares": shares}}}, "other": "ignored"}
    objects.put_bytes(manifest_key("sms_uplift", "v1"), json.dumps(manifest).encode())
    objects.put_bytes(manifest_key("response", "v1"), json.dumps({"metrics": {"kind": "classifier"}}).encode())
    validations = ManifestValidations(objects)
    assert validations.validation("sms_uplift", "v1", 0.12).preferred == "uplift"  # type: ignore[union-attr]
    near = validations.validation("sms_uplift", "v1", 0.25)
    assert near is not None and (near.share, near.preferred) == (0.3, "response")
    assert validations.validation("response", "v1", 0.2) is None  # not an uplift model
    assert validations.validation("sms_uplift", "v9", 0.2) is None  # no such version


def test_a_targeting_that_ranks_by_uplift_names_its_model_and_margin() -> None:
    with pytest.raises(ValidationError, match="uplift_model and a margin_minor"):
        Targeting(ranking="auto", margin_minor=100)
    with pytest.raises(ValidationError, match="uplift_model and a margin_minor"):
        Targeting(ranking="uplift", uplift_model="sms_uplift")
    assert Targeting().ranking == "response"


def _with_uplift(p: Profile, uplift: float, treated: float) -> Profile:
    scores = {
        **p.scores,
        "sms_uplift": ModelScore(score=uplift, model_version="u1", scored_at=T0, outputs={"treated": treated}),
    }
    return p.model_copy(update={"scores": scores})


def test_the_select_step_ranks_by_profit_and_records_why_in_the_audience_manifest(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given 10 sure things (response 0.9, uplift 0) and 10 persuadables (response 0.2, uplift 0.3)
    people = [_with_uplift(profile(f"s{i}", score=0.9), 0.0, 0.9) for i in range(10)]
    people += [_with_uplift(profile(f"p{i}", score=0.2), 0.3, 0.3) for i in range(10)]
    budget = {"amount_minor": 50, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}}
    targeting = {"ranking": "uplift", "uplift_model": "sms_uplift", "margin_minor": 3000}
    req = request_for(budget=budget, holdout_fraction=0.0, targeting=targeting)
    # When selected with budget for 10
    select_audience(req, InMemoryProfiles(people), store, t0)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    # Then the persuadables get it, and the manifest shows both rankings' expectations side by side
    assert sorted(m.person_id for m in doc.treatment) == sorted(f"p{i}" for i in range(10))
    report = doc.manifest.targeting
    assert report is not None and report.used == "uplift"
    assert report.uplift.expected_incremental_conversions == pytest.approx(3.0)
    assert report.response.expected_incremental_conversions == pytest.approx(0.0)
    assert all(m.uplift == 0.3 and m.p_treated == 0.3 for m in doc.treatment)


def test_a_journey_cannot_rank_by_uplift_and_is_told_how_to_gate_instead() -> None:
    samples = Path(__file__).resolve().parents[3] / "events" / "campaigns"
    raw = yaml.safe_load((samples / "abandoned_cart.yaml").read_text(encoding="utf-8"))
    raw["targeting"] = {"ranking": "auto", "uplift_model": "sms_uplift", "margin_minor": 3000}
    with pytest.raises(CampaignInvalidError) as caught:
        parse_definition(raw)
    assert any(e.field == "targeting" and "score: sms_uplift" in e.message for e in caught.value.errors)
