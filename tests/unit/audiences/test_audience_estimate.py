"""Size estimates: the cluster-sampling arithmetic, its 95% coverage, and the service's exact/sampled choice."""

from __future__ import annotations

import random

import pytest

from cdp.audiences.evaluation import extrapolate, t_quantile
from cdp.audiences.models import SegmentCount, SizeRequest
from cdp.audiences.service import AudienceService
from tests.unit.audiences.conftest import CountingProfiles, definition, make_profile


def _counts(members: list[int], profiles: list[int]) -> list[SegmentCount]:
    return [
        SegmentCount(segment=i, profiles=p, members=m) for i, (m, p) in enumerate(zip(members, profiles, strict=True))
    ]


def test_extrapolation_by_hand() -> None:
    # Given 4 of 8 segments with 3, 5, 4, 4 members of 100 profiles each
    result = extrapolate(8, _counts([3, 5, 4, 4], [100] * 4))
    # Then N = 8 * 4 = 32; SE = sqrt(64 * 0.5 * (2/3) / 4) = 2.309; t(3) = 3.182: 32 +- 7.35 -> [24, 40]
    assert (result.estimate, result.low, result.high) == (32, 24, 40)
    assert result.population == 800
    assert "4 of 8 segments" in result.method and "3 df" in result.method


def test_every_segment_scanned_is_exact() -> None:
    result = extrapolate(3, _counts([1, 0, 2], [5, 5, 5]))
    assert (result.estimate, result.low, result.high, result.population) == (3, 3, 3, 15)


def test_no_member_in_the_sample_gives_a_rule_of_three_upper_bound() -> None:
    # 0 of 400 scanned profiles, population 1,600: the 95% upper bound is 3/400 of it
    result = extrapolate(8, _counts([0, 0], [200, 200]))
    assert (result.estimate, result.low, result.high) == (0, 0, 12)


def test_the_interval_never_goes_below_what_was_seen() -> None:
    result = extrapolate(10, _counts([4, 6], [10, 10]))
    assert result.estimate == 50 and result.low == 10 and result.high == 164


def test_t_quantiles() -> None:
    assert t_quantile(1) == 12.706 and t_quantile(30) == 2.042 and t_quantile(35) == 2.042
    assert t_quantile(1000) == 1.980
    with pytest.raises(ValueError):
        t_quantile(0)


def test_the_95_percent_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    # Given 300 random tables of 6,000 profiles in 32 hash segments, 12% members (clustered a little per segment)
    rng = random.Random(11)
    covered = 0
    trials = 300
    for _ in range(trials):
        segment_rates = [max(0.0, rng.gauss(0.12, 0.02)) for _ in range(32)]
        sizes = [0] * 32
        members = [0] * 32
        for _person in range(6_000):
            s = rng.randrange(32)
            sizes[s] += 1
            members[s] += rng.random() < segment_rates[s]
        truth = sum(members)
        # When 8 random segments are scanned
        picked = rng.sample(range(32), 8)
        result = extrapolate(32, [SegmentCount(segment=s, profiles=sizes[s], members=members[s]) for s in picked])
        covered += result.low <= truth <= result.high
    # Then the interval holds the true size in about 95% of the tables (binomial sd ~1.3 points at n=300)
    assert 0.90 <= covered / trials <= 0.995


def _table(n: int, profiles: CountingProfiles) -> int:
    """n profiles; every fifth in Shanghai. Returns how many are."""
    for i in range(n):
        profiles.profiles[f"p{i:05d}"] = make_profile(f"p{i:05d}", city="Shanghai" if i % 5 == 0 else "Beijing")
    return len(range(0, n, 5))


def test_a_small_table_is_counted_exactly(service: AudienceService, profiles: CountingProfiles) -> None:
    truth = _table(300, profiles)
    service.define(definition("sh", include={"attr": "city", "eq": "Shanghai"}))
    estimate = service.size("sh", SizeRequest())
    assert estimate.exact and estimate.estimate == estimate.low == estimate.high == truth == 60
    assert estimate.segments_scanned == estimate.segments_total == 16 and estimate.confidence is None
    assert estimate.profiles_scanned == 300 and estimate.population_estimate == 300
    assert not estimate.read_timelines and profiles.timeline_reads == 0
    assert estimate.timings.profiles == 300 and estimate.timings.total_ms >= estimate.timings.evaluate_ms >= 0


def test_a_large_table_is_sampled_and_extrapolated(service: AudienceService, profiles: CountingProfiles) -> None:
    # Given 4,000 profiles (250 per segment) and an exact scan limited to 600 profiles
    truth = _table(4000, profiles)
    service.define(definition("sh", include={"attr": "city", "eq": "Shanghai"}))
    estimate = service.size("sh", SizeRequest(exact_below=600))
    # Then 3 segments (600 / 250, rounded up) are scanned and the 95% interval holds the truth
    assert not estimate.exact and estimate.segments_scanned == 3 and estimate.confidence == 0.95
    assert estimate.profiles_scanned == 750 and estimate.population_estimate == 4000
    assert estimate.low <= truth <= estimate.high
    assert len({c.segment for c in estimate.sample}) == 3
    # And an explicit sample size is honoured; the same seed scans the same segments
    explicit = service.size("sh", SizeRequest(sample_segments=5, seed=3))
    again = service.size("sh", SizeRequest(sample_segments=5, seed=3))
    assert explicit.segments_scanned == 5 and explicit.sample == again.sample
