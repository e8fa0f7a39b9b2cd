"""Both adapters over real HTTP (urllib) to the loopback fakes, with the retries an activation uses: the hashes that
arrive, an expired token, rate limits and gateway 5xx retried, an invalid request refused for good, and a read
timeout (done at the platform, the answer lost)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cdp.activation.ocean_engine import OceanEngine
from cdp.activation.platforms import SourceAdPlatforms
from cdp.activation.ports import AdPlatform, AdPlatformNoAnswer, AdPlatformRefused, Backoff
from cdp.activation.tencent_ads import TencentAds
from cdp.connectors.ad_accounts import OceanEngineAccount, TencentAdsAccount
from cdp.connectors.sources import StaticSources, parse_sources
from cdp_local.fakes.ocean_engine import FakeOceanEngine
from cdp_local.fakes.tencent_ads import FakeTencentAds

PHONES = [f"+86139{i:08d}" for i in range(25)]
NO_WAIT = Backoff(attempts=3, waits_s=(0.01,))


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTencentAds, FakeOceanEngine]]:
    with FakeTencentAds() as tencent, FakeOceanEngine() as ocean:
        yield tencent, ocean


def _platforms(tencent: FakeTencentAds, ocean: FakeOceanEngine, **account: object) -> SourceAdPlatforms:
    document = {
        "ad_platforms": {"b": {"tencent_ads": tencent.account(**account), "ocean_engine": ocean.account(**account)}}
    }
    return SourceAdPlatforms(StaticSources(parse_sources(document)), backoff=NO_WAIT)


def _hashes(platform: AdPlatform) -> list[str]:
    return [h for h in (platform.identifier(p) for p in PHONES) if h]


def test_both_platforms_receive_the_hashed_numbers_over_http(fakes: tuple[FakeTencentAds, FakeOceanEngine]) -> None:
    tencent_fake, ocean_fake = fakes
    platforms = _platforms(tencent_fake, ocean_fake)
    tencent, ocean = platforms.platform("b", "tencent_ads"), platforms.platform("b", "ocean_engine")
    assert tencent is not None and ocean is not None
    # When 25 numbers are uploaded to each, in files of at most 10
    audience = tencent.create_audience("http test", "d")
    tencent_files = [tencent.upload(audience, _hashes(tencent)[i : i + 10]) for i in range(0, 25, 10)]
    paths = [ocean.upload(None, _hashes(ocean)[i : i + 10]) for i in range(0, 25, 10)]
    source = ocean.complete(None, paths, "http test", "d")
    # Then Tencent's audience holds the 25 MD5s, Ocean Engine's data source the 25 SHA-256s; no number in clear
    assert tencent.complete(audience, tencent_files, "n", "d") == audience
    assert tencent_fake.audience_ids(str(audience)) == set(_hashes(tencent))
    assert {i.id for i in ocean_fake.data_source_ids(source)} == set(_hashes(ocean))
    sent = [i for f in tencent_fake.files for i in f.ids] + [i.id for i in ocean_fake.data_source_ids(source)]
    assert not any(p[3:] in s for p in PHONES for s in sent)


def test_rate_limits_and_gateway_errors_are_retried_then_succeed(fakes: tuple[FakeTencentAds, FakeOceanEngine]) -> None:
    tencent_fake, ocean_fake = fakes
    platforms = _platforms(tencent_fake, ocean_fake)
    tencent, ocean = platforms.platform("b", "tencent_ads"), platforms.platform("b", "ocean_engine")
    assert tencent is not None and ocean is not None
    # Given a minute rate limit, then a 502 from the gateway, before each platform answers
    tencent_fake.refuse_next(11017)
    tencent_fake.fail_next(502, b"<html>502 Bad Gateway</html>")
    ocean_fake.refuse_next(40100)
    ocean_fake.fail_next(503)
    # Then the third attempt of each succeeds
    assert tencent.create_audience("retry", "d")
    assert ocean.upload(None, _hashes(ocean)[:3]).startswith("dmp/")


def test_an_expired_token_and_an_invalid_request_are_refused_for_good(
    fakes: tuple[FakeTencentAds, FakeOceanEngine],
) -> None:
    tencent_fake, ocean_fake = fakes
    platforms = _platforms(tencent_fake, ocean_fake)
    tencent, ocean = platforms.platform("b", "tencent_ads"), platforms.platform("b", "ocean_engine")
    assert tencent is not None and ocean is not None
    # Given Tencent's token expired / Then one call, refused for good, naming the code (never the token)
    tencent_fake.expire_token()
    with pytest.raises(AdPlatformRefused) as expired:
        tencent.create_audience("x", "d")
    assert (expired.value.code, expired.value.permanent) == ("credentials_rejected", True)
    assert len(tencent_fake.calls) == 1 and tencent_fake.access_token not in str(expired.value)
    # Given a data source made of a file path Ocean Engine never issued / Then refused for good
    with pytest.raises(AdPlatformRefused) as invalid:
        ocean.complete(None, ["dmp/unknown.zip"], "x", "d")
    assert invalid.value.permanent and invalid.value.code == "oceanengine_40001"


def test_a_read_timeout_leaves_the_outcome_unknown_and_an_upload_is_sent_again(
    fakes: tuple[FakeTencentAds, FakeOceanEngine],
) -> None:
    tencent_fake, ocean_fake = fakes
    account = TencentAdsAccount.model_validate(tencent_fake.account(timeout_s=0.3))
    # Given a create whose answer comes after the client gave up / Then no answer (a second audience is not made)
    tencent_fake.delay_next(0.6)
    with pytest.raises(AdPlatformNoAnswer):
        TencentAds(account).create_audience("slow", "d")
    # Given an upload answered late once / Then the retrying adapter sends it again and the file is there
    ocean_fake.delay_next(0.6)
    platforms = _platforms(tencent_fake, ocean_fake, timeout_s=0.3)
    ocean = platforms.platform("b", "ocean_engine")
    assert ocean is not None
    assert ocean.upload(None, _hashes(ocean)[:2]).startswith("dmp/")
    time.sleep(0.5)  # the late request finishes at the fake after its delay
    assert len(ocean_fake.files) == 2  # the late one was stored too: its path is simply never used
    # And the plain adapter with a short timeout says the same as Tencent's
    plain = OceanEngine(OceanEngineAccount.model_validate(ocean_fake.account(timeout_s=0.3)))
    ocean_fake.delay_next(0.6)
    with pytest.raises(AdPlatformNoAnswer):
        plain.upload(None, _hashes(plain)[:1])
