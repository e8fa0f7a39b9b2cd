"""The synthetic brand: demo data with known true identities, a simulated future, and truth metrics."""

from cdp_local.demo.brand import (
    DEFAULT_NOW,
    PAST_CAMPAIGN_ID,
    BrandCounts,
    HardCaseCounts,
    PastCampaign,
    SyntheticBrand,
    generate_brand,
)
from cdp_local.demo.people import TruePerson
from cdp_local.demo.truth import (
    PairwiseScores,
    ResolutionScores,
    identifier_key,
    linkable_truth,
    pairwise_scores,
    score_resolution,
)
from cdp_local.demo.world import World

__all__ = [
    "DEFAULT_NOW",
    "PAST_CAMPAIGN_ID",
    "BrandCounts",
    "HardCaseCounts",
    "PairwiseScores",
    "PastCampaign",
    "ResolutionScores",
    "SyntheticBrand",
    "TruePerson",
    "World",
    "generate_brand",
    "identifier_key",
    "linkable_truth",
    "pairwise_scores",
    "score_resolution",
]
