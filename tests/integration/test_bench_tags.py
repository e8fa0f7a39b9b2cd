"""`cdp bench --suite tags` at a small size: the generated data set has the asked shape, the batch of 20 tags
agrees with the in-memory evaluator on the spot-checked persons, and the audience counted over the materialized
tags equals the same audience computed from the raw events."""

from __future__ import annotations

from pathlib import Path

from cdp_local.bench_tags import BATCH_TAGS, tags_benchmark


def test_tags_benchmark_small(tmp_path: Path) -> None:
    figures = tags_benchmark(tmp_path / "data", profiles=3000, events=40_000, realtime_events=0)
    assert figures["tags.profiles"]["value"] == 3000
    assert figures["tags.events"]["value"] == 40_000
    assert len(BATCH_TAGS) == 20
    checked = figures["tags.batch_spot_check_values"]["value"]
    assert checked == 300 * len(BATCH_TAGS)
    assert figures["tags.batch_spot_check_agreeing"]["value"] == checked
    assert figures["tags.audience_size_agrees"]["value"] == 1
    assert float(figures["tags.batch_20_tags_seconds"]["value"]) > 0
    # a second run reuses the cached data set
    again = tags_benchmark(tmp_path / "data", profiles=3000, events=40_000, realtime_events=0)
    assert again["tags.generate_seconds"]["value"] == 0.0
