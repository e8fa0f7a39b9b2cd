"""Audience selection: filter, rank by score, cut to the budget, deterministic holdout, artifacts in the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cdp.campaigns.models import AudienceDocument, CampaignRequest, Member
from cdp.campaigns.service import (
    audience_key,
    batch_key,
    capacity,
    holdout_draw,
    rank_key,
    select_audience,
    split_holdout,
)
from cdp.profile.models import Profile
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.fakes.profiles import InMemoryProfiles

ProfileFactory = Callable[..., Profile]
RequestFactory = Callable[..., CampaignRequest]


def _budget(amount_minor: int) -> dict[str, object]:
    return {"amount_minor": amount_minor, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}}


def test_ranking_is_score_desc_unscored_last_ties_by_person_id() -> None:
    # Given members with equal, different and missing scores
    members = [Member(person_id=p, score=s) for p, s in [("d", None), ("c", 0.5), ("b", 0.9), ("a", 0.5), ("e", None)]]
    # When ranked / Then the order never depends on input order
    assert [m.person_id for m in sorted(members, key=rank_key)] == ["b", "a", "c", "d", "e"]
    assert sorted(reversed(members), key=rank_key) == sorted(members, key=rank_key)


def test_capacity_is_budget_over_touch1_cost_capped_by_max_recipients(request_for: RequestFactory) -> None:
    # Given 1,003 fen at 5 fen per SMS / Then 200 recipients (floor), or the hard cap when lower
    assert capacity(request_for(budget=_budget(1003), max_recipients=None)) == 200
    assert capacity(request_for(budget=_budget(1003), max_recipients=50)) == 50
    assert capacity(request_for(budget=_budget(4), max_recipients=None)) == 0


def test_holdout_is_deterministic_and_close_to_the_fraction() -> None:
    # Given 5,000 ranked members
    members = [Member(person_id=f"p{i:05d}", score=None) for i in range(5000)]
    # When split twice with the same run and once with another run
    t1, h1 = split_holdout("run-a", members, 0.1)
    t2, h2 = split_holdout("run-a", members, 0.1)
    _, h3 = split_holdout("run-b", members, 0.1)
    # Then the same run gives the same split, the size is near 10% (binomial sd ~21), another run differs
    assert (t1, h1) == (t2, h2)
    assert 400 <= len(h1) <= 600
    assert len(t1) + len(h1) == 5000
    assert {m.person_id for m in h1} != {m.person_id for m in h3}
    # And the draw is a uniform number in [0, 1)
    assert all(0.0 <= holdout_draw("run-a", m.person_id) < 1.0 for m in members[:100])
    assert split_holdout("run-a", members, 0.0) == (members, [])


def test_select_filters_ranks_cuts_and_writes_artifacts(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given 30 consenting champions with scores, plus people who must be left out
    champions = [profile(f"p{i:02d}", tags={"rfm_segment": "champions"}, score=i / 100) for i in range(30)]
    others = [
        profile("no-consent", tags={"rfm_segment": "champions"}, score=0.99, consent={"sms": False}),
        profile("email-only", tags={"rfm_segment": "champions"}, score=0.99, consent={"email": True}),
        profile("other-brand", brand_id="another-brand", tags={"rfm_segment": "champions"}, score=0.99),
        profile("loyal", tags={"rfm_segment": "loyal"}, score=0.99),
        profile("unscored", tags={"rfm_segment": "champions"}),
        profile("merged", tags={"rfm_segment": "champions"}, score=0.99, merged_into="p00"),
    ]
    profiles = InMemoryProfiles([*champions, *others])
    # And a budget for 20 SMS, no holdout, batches of 7
    req = request_for(
        audience={"all_of": [{"tag": "rfm_segment", "equals": "champions"}]},
        budget=_budget(100),
        holdout_fraction=0.0,
        batch_size=7,
        scan_segments=3,
    )
    # When the audience is selected
    result = select_audience(req, profiles, store, t0)
    # Then the 20 best-scored eligible champions are chosen (31 eligible incl. the unscored one, ranked last)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    assert [m.person_id for m in doc.treatment] == [f"p{i:02d}" for i in range(29, 9, -1)]
    assert result.selection.counts.eligible == 31
    assert result.selection.counts.selected == 20 and result.selection.counts.treatment == 20
    # And batches of at most 7 ids, in rank order, are written under batches/touch1/
    keys = [b.batch_key for b in result.selection.batches]
    assert keys == [batch_key("run-1", "touch1", i) for i in range(3)] == doc.manifest.batch_keys
    assert keys[0] == "campaigns/run-1/batches/touch1/0000.json"
    batches = [store.get_json(k) for k in keys]
    assert [len(b) for b in batches] == [7, 7, 6]
    assert [p for b in batches for p in b] == [m.person_id for m in doc.treatment]
    # And the manifest records the budget used and the send reference time
    assert doc.manifest.budget_reserved_minor == 100 and doc.manifest.capacity == 20
    assert result.selection.sent_at == t0 == doc.manifest.sent_at
    assert result.request.run_id == "run-1"


def test_select_splits_holdout_out_of_the_batches(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given 400 eligible persons and a 25% holdout, budget for all
    profiles = InMemoryProfiles([profile(f"p{i:03d}", score=(i % 97) / 100) for i in range(400)])
    req = request_for(budget=_budget(5 * 400), holdout_fraction=0.25, batch_size=500)
    # When selected
    result = select_audience(req, profiles, store, t0)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    # Then nobody of the holdout is in a send batch, and the split matches the hash draw
    sent = {p for b in result.selection.batches for p in store.get_json(b.batch_key)}
    held = {m.person_id for m in doc.holdout}
    assert sent.isdisjoint(held) and len(sent) + len(held) == 400
    assert held == {f"p{i:03d}" for i in range(400) if holdout_draw("run-1", f"p{i:03d}") < 0.25}
    assert 60 <= len(held) <= 140
    # And the budget reserved counts only the treatment
    assert doc.manifest.budget_reserved_minor == 5 * len(sent)


def test_select_is_idempotent_for_a_run(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given a run already selected
    profiles = InMemoryProfiles([profile(f"p{i}", score=0.5) for i in range(10)])
    first = select_audience(request_for(), profiles, store, t0)
    # When the step is retried after the profiles changed
    profiles.profiles["p0"] = profile("p0", score=0.5, consent={})
    profiles.profiles["new"] = profile("new", score=0.9)
    again = select_audience(request_for(), profiles, store, t0)
    # Then the same audience comes back
    assert again == first


def test_select_derives_the_run_id_from_the_execution(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given a request without run_id, started by an execution
    req = request_for(run_id=None)
    # When selected with an empty store
    result = select_audience(req, InMemoryProfiles(), store, t0, execution_name="exec 42")
    # Then the run id is campaign + sanitized execution name, and an empty audience has no batches
    assert result.selection.run_id == "spring-cake-2026-exec-42" == result.request.run_id
    assert result.selection.batches == [] and result.selection.counts.treatment == 0
    assert audience_key("spring-cake-2026-exec-42") in store


class _Plans:
    """Offer plans that reserve, and a message pool that holds `pool_minor`."""

    def __init__(self, pool_minor: int) -> None:
        self.pool_minor = pool_minor
        self.messages: list[int] = []
        self.released: list[str] = []

    def reserve(self, brand_id: str, run_id: str, offer_ids: object, persons: int, now: datetime) -> int:
        return 0

    def reserve_messages(self, brand_id: str, run_id: str, pool_id: str, amount_minor: int, now: datetime) -> int:
        if amount_minor > self.pool_minor:
            from cdp.budgets.ledger import BudgetExhaustedError

            raise BudgetExhaustedError(pool_id, amount_minor, self.pool_minor)
        self.messages.append(amount_minor)
        return amount_minor

    def release(self, brand_id: str, run_id: str, offer_ids: object, now: datetime) -> None:
        self.released.append(run_id)

    def pool_problem(self, brand_id: str, pool_id: str, currency: str) -> str | None:
        return None


def test_a_budget_naming_a_pool_reserves_every_first_send_and_reminder_before_anything_leaves(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given 10 persons, SMS at 5 fen with an e-mail reminder at 1 fen, all treated, a message pool
    profiles = InMemoryProfiles([profile(f"p{i:02d}", score=i / 100) for i in range(10)])
    email = {"channel": "email", "template": {"subject": "Still there?", "body": "Your code is waiting"}}
    budget = {**_budget(1_000), "pool_id": "sms-q4"}
    req = request_for(budget=budget, holdout_fraction=0.0, touch2=email, second_touch=True)
    plans = _Plans(pool_minor=10_000)
    # When selected
    select_audience(req, profiles, store, t0, plans=plans)
    # Then 10 x (5 + 1) is reserved from the pool, and the manifest says so
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    assert plans.messages == [60] and doc.manifest.messages_reserved_minor == 60


def test_a_message_pool_that_cannot_cover_the_run_fails_its_selection_with_nothing_held(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    import pytest

    from cdp.budgets.ledger import BudgetExhaustedError

    profiles = InMemoryProfiles([profile(f"p{i:02d}", score=i / 100) for i in range(10)])
    req = request_for(budget={**_budget(1_000), "pool_id": "sms-q4"}, holdout_fraction=0.0)
    plans = _Plans(pool_minor=20)
    with pytest.raises(BudgetExhaustedError):
        select_audience(req, profiles, store, t0, plans=plans)
    # the run's offer plans went back, and no audience.json: a retried selection starts over
    assert plans.released == ["run-1"] and not store.exists(audience_key("run-1"))
