"""The demo's models: each kind trained on the synthetic brand through the train machine, all promoted ones scored in
one pass, and the campaign's targeting judged against the hidden world (what no real brand can see)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cdp import topology
from cdp.campaigns.models import Member
from cdp.campaigns.service import rank_key
from cdp.campaigns.targeting import Targeting, expected_profit
from cdp.models.headline import ModelHeadline, headline
from cdp.models.store import S3ModelStore
from cdp_local.demo.brand import RANDOMIZED_CAMPAIGN_IDS
from cdp_local.demo.world import World
from cdp_local.runtime import LocalRuntime

RESPONSE_MODEL = "response"
UPLIFT_MODEL = "sms_uplift"


def demo_models(seed: int, min_auc: float) -> list[dict[str, Any]]:
    """Train inputs, in order. The response and uplift models learn from the brand's four randomized SMS campaigns
    (their held-out persons on record): response trained on the earlier three and tested on the latest (autumn)."""
    return [
        {
            "model_name": RESPONSE_MODEL,
            "campaign_ids": list(RANDOMIZED_CAMPAIGN_IDS),
            "window_days": 14,
            "seed": seed,
            "min_auc": min_auc,
        },
        {
            "model_name": UPLIFT_MODEL,
            "kind": "uplift",
            "campaign_ids": list(RANDOMIZED_CAMPAIGN_IDS),
            "window_days": 14,
            "budget_share": 0.3,
            "seed": seed,
        },
        {"model_name": "churn", "kind": "churn", "window_days": 90, "seed": seed, "min_auc": min_auc},
        {"model_name": "clv", "kind": "clv", "holdout_days": 90, "margin": 0.4, "seed": seed},
        {"model_name": "next_product", "kind": "next_product", "holdout_days": 60, "seed": seed},
        {
            "model_name": "lookalike_gold",
            "kind": "lookalike",
            "seed_tag": "spend_tier",
            "seed_values": ["gold", "platinum"],
            "seed": seed,
            "min_auc": min_auc,
        },
    ]


@dataclass(frozen=True)
class TrainedModels:
    headlines: list[ModelHeadline]
    promoted: list[str]
    response_held_out: dict[str, Any]  # the response model's held-out metrics (AUC, lift, calibration bins)
    untrained: dict[str, str]  # models this brand's data could not train, with the task's error


def model_headlines(rt: LocalRuntime, versions: dict[str, str], min_auc: float) -> list[ModelHeadline]:
    """Each model's version just trained (promoted or not) as one line, from its manifest in the registry."""
    store = S3ModelStore(topology.DATA_BUCKET_LOCAL_NAME, client=rt.client("s3"))
    return [headline(store.manifest(name, version), min_auc) for name, version in versions.items()]


# ---- the campaign's targeting against the hidden truth -------------------------------------------------------------


def _pick(pool: Sequence[Member], n: int, targeting: Targeting, cost: int, by: str) -> list[Member]:
    if by == "response":
        return sorted(pool, key=rank_key)[:n]
    valued = [(expected_profit(m, targeting, cost), m) for m in pool]
    return [m for _, m in sorted(valued, key=lambda pm: (pm[0] is None, -(pm[0] or 0.0), pm[1].person_id))][:n]


def targeting_truth(
    pool: Sequence[Member],
    capacity: int,
    targeting: Targeting,
    cost: int,
    world: World,
    keys_of: dict[str, list[str]],
    channel: str = "sms",
) -> dict[str, Any]:
    """Both rankings at the same budget (the campaign's capacity), judged by the world's true uplift: the expected
    incremental orders of each pick, and of uplift's pick minus response's with a 95% interval over what one send
    would realize (each caused order a Bernoulli draw of the person's true uplift; persons in both picks cancel)."""

    def true_uplift(member: Member) -> float:
        for key in keys_of.get(member.person_id, []):
            try:
                treated = world.conversion_probability(key, channel, treated=True)
                return treated - world.conversion_probability(key, channel, treated=False)
            except KeyError:
                continue
        return 0.0

    if not any(m.uplift is not None for m in pool):
        return {
            "persons_each": capacity,
            "eligible": len(pool),
            "verdict": "no uplift scores (the model was not promoted)",
        }
    by_response = _pick(pool, capacity, targeting, cost, "response")
    by_uplift = _pick(pool, capacity, targeting, cost, "uplift")
    truth = {m.person_id: true_uplift(m) for m in {*by_response, *by_uplift}}
    ids_r, ids_u = {m.person_id for m in by_response}, {m.person_id for m in by_uplift}
    expected_r = sum(truth[p] for p in ids_r)
    expected_u = sum(truth[p] for p in ids_u)
    variance = sum(truth[p] * (1 - truth[p]) for p in ids_u ^ ids_r)
    half = 1.96 * math.sqrt(variance)
    difference = expected_u - expected_r
    return {
        "persons_each": capacity,
        "eligible": len(pool),
        "true_incremental_orders_response_ranking": round(expected_r, 1),
        "true_incremental_orders_uplift_ranking": round(expected_u, 1),
        "difference": round(difference, 1),
        "difference_95": [round(difference - half, 1), round(difference + half, 1)],
        "persons_in_only_one_pick": len(ids_u ^ ids_r),
        "verdict": (
            "uplift ranking reaches more people the message changes"
            if difference - half > 0
            else "response ranking does as well or better on this world"
            if difference + half < 0 or difference <= 0
            else "uplift ranking is ahead, within what one send could show by chance"
        ),
    }
