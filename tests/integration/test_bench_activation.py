"""The activation benchmark at a small size, with a part of 12 members so the activation takes the /continue route:
every person's hash reaches each platform's loopback fake (and nothing else does), the counts add up part over part,
and the requests are priced call by call (the figures themselves: `cdp bench --suite activation`)."""

from __future__ import annotations

import pytest

from cdp_local.bench_activation import PLATFORMS, activation_benchmark

pytestmark = pytest.mark.xdist_group("runtime")

PERSONS, PART = 30, 12  # three requests: 12, 12 and 6 members


@pytest.fixture(scope="module")
def value() -> dict[str, float]:
    results = activation_benchmark(persons=PERSONS, part_size=PART)
    return {name: float(metric["value"]) for name, metric in results.items()}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_persons_hash_reaches_the_platform_and_the_counts_add_up(value: dict[str, float], platform: str) -> None:
    prefix = f"activation.{platform}"
    # Given 30 persons opted in to SMS, activated 12 members a request: the first request and two /continue
    assert value[f"{prefix}.requests"] == 3
    # Then every one is uploaded once, and the platform's audience holds exactly their hashes
    assert value[f"{prefix}.persons_uploaded"] == PERSONS
    assert value[f"{prefix}.identifiers_uploaded"] == PERSONS
    assert value[f"{prefix}.hashes_at_platform"] == PERSONS
    assert value[f"{prefix}.hashes_missing"] == 0 and value[f"{prefix}.hashes_unexpected"] == 0
    # And the record's counts add up over the parts: every member read once, under one reason
    assert value[f"{prefix}.counts_add_up"] == 1
    # And one file a part reached the platform, plus the audience's create (Tencent: first; Ocean Engine: last)
    assert value[f"{prefix}.files"] == 3 and value[f"{prefix}.platform_calls"] == 4


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_request_is_priced_by_its_calls(value: dict[str, float], platform: str) -> None:
    per = f"activation.{platform}.calls_per_person"
    requests = 3 / PERSONS
    # one HTTP API request and one invocation of the audience function per part
    assert value[f"{per}.apigateway.HttpApiRequest"] == pytest.approx(requests, abs=1e-4)
    assert value[f"activation.{platform}.billed_per_person.lambda_requests"] == pytest.approx(requests, abs=1e-4)
    # each part: the audience, the manifest and the members file read, the record written as running and as done
    assert value[f"{per}.s3.GetObject"] == pytest.approx(3 * requests, abs=1e-4)
    assert value[f"{per}.s3.PutObject"] == pytest.approx(2 * requests, abs=1e-4)
    assert value[f"{per}.s3.ListObjectsV2"] == pytest.approx(1 / PERSONS, abs=1e-4)  # the latest snapshot, once
    # the members' profiles, 100 a BatchGetItem: strongly consistent, the profile and its tags item (1 RRU each)
    assert value[f"{per}.dynamodb.BatchGetItem"] == pytest.approx(requests, abs=1e-4)
    assert value[f"activation.{platform}.billed_per_person.dynamodb_rru"] == 2
    # a warm container: the secrets are cached (the warm-up activation read them)
    assert f"{per}.secretsmanager.GetSecretValue" not in value
    assert value[f"activation.{platform}.cost_per_1m_persons_usd"] > 0
    assert value[f"activation.{platform}.cost_per_1m_persons.lambda.usd"] > 0


def test_the_whole_is_both_platforms_together(value: dict[str, float]) -> None:
    each = [value[f"activation.{p}.cost_per_1m_persons_usd"] for p in PLATFORMS]
    assert min(each) <= value["activation.cost_per_1m_persons_usd"] <= max(each)
    services = sum(v for name, v in value.items() if name.startswith("activation.cost_per_1m_persons."))
    assert services == pytest.approx(value["activation.cost_per_1m_persons_usd"], abs=1e-3)
