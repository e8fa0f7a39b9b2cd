"""Ground-truth metrics for identity resolution: pairwise precision/recall from contingency counts.

Two identifiers form a *pair* when they belong to the same person. Precision is the share of the pairs the platform
put together that truly belong together; recall the share of the true pairs the platform found. Counting pairs per
group as n*(n-1)/2 keeps this O(n) for hundreds of thousands of identifiers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from cdp.identifiers.model import Identifier


class PairwiseScores(BaseModel):
    model_config = ConfigDict(frozen=True)

    identifiers: int  # identifiers present in both maps (the only ones scored)
    true_pairs: int  # pairs the truth puts together
    predicted_pairs: int  # pairs the resolution puts together
    correct_pairs: int  # pairs both put together
    precision: float  # 1.0 when nothing was merged: no false merge was made
    recall: float  # 1.0 when the truth has no pair to find
    f1: float


class ResolutionScores(BaseModel):
    """Scores over every identifier, and recall over those the deterministic rules could possibly link."""

    model_config = ConfigDict(frozen=True)

    all: PairwiseScores
    linkable: PairwiseScores


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_scores(truth: Mapping[str, str], resolved: Mapping[str, str]) -> PairwiseScores:
    """Score `resolved` (identifier key -> platform person id) against `truth` (key -> true person id)."""
    common = [key for key in truth if key in resolved]
    true_sizes = Counter(truth[key] for key in common)
    predicted_sizes = Counter(resolved[key] for key in common)
    joint_sizes = Counter((truth[key], resolved[key]) for key in common)
    true_pairs = sum(_pairs(n) for n in true_sizes.values())
    predicted_pairs = sum(_pairs(n) for n in predicted_sizes.values())
    correct = sum(_pairs(n) for n in joint_sizes.values())
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(
        identifiers=len(common),
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct,
        precision=precision,
        recall=recall,
        f1=f1,
    )


@lru_cache(maxsize=262_144)
def identifier_key(kind: str, value: str, scope: str | None = None, phone_region: str = "CN") -> str:
    """The normalized lookup key exactly as `cdp.identifiers.model.Identifier.key` makes it."""
    payload = {"type": kind, "value": value, "scope": scope}
    return Identifier.model_validate(payload, context={"phone_region": phone_region}).key


def event_keys(event: Mapping[str, Any]) -> list[str]:
    """Identifier keys of one canonical event dict."""
    return [identifier_key(i["type"], i["value"], i.get("scope")) for i in event["identifiers"]]


def linkable_truth(
    truth: Mapping[str, str], events: Iterable[Mapping[str, Any]], shared: Iterable[str] = ()
) -> dict[str, str]:
    """The truth restricted to what evidence can support.

    Identifiers of one person are linkable when events chain them together (seen in the same event, directly or
    through other identifiers of that person; shared devices never count as a link). Each person is split into
    those linked islands, and identifiers that were never seen beside another of their own (a lone typo) are
    dropped: recall against this map measures the rules, not the missing evidence.
    """
    shared_keys = set(shared)
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(key, key) != root:  # path compression
            parent[key], key = root, parent[key]
        return root

    for event in events:
        first_of_owner: dict[str, str] = {}
        for key in event_keys(event):
            if key not in truth or key in shared_keys:
                continue
            anchor = first_of_owner.setdefault(truth[key], key)
            if anchor != key:
                parent.setdefault(anchor, anchor)
                parent.setdefault(key, key)
                ra, rb = find(anchor), find(key)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    sizes = Counter(find(key) for key in parent)
    return {key: f"{truth[key]}|{find(key)}" for key in truth if key in parent and sizes[find(key)] > 1}


def score_resolution(
    truth: Mapping[str, str], linkable: Mapping[str, str], resolved: Mapping[str, str]
) -> ResolutionScores:
    return ResolutionScores(all=pairwise_scores(truth, resolved), linkable=pairwise_scores(linkable, resolved))
