"""The brands' ad accounts in the sources secret: validated on load, every problem named by its path."""

from __future__ import annotations

import pytest

from cdp.activation.platforms import SourceAdPlatforms
from cdp.activation.ports import RetryingAdPlatform
from cdp.connectors.sources import SourcesConfigError, StaticSources, parse_sources

GOOD = {
    "demo-brand": {
        "tencent_ads": {"account_id": "25610", "access_token": "t-token"},
        "ocean_engine": {
            "advertiser_id": "1760312309087432",
            "access_token": "o-token",
            "base_url": "http://127.0.0.1:9",
        },
    }
}


def test_a_brands_accounts_load_with_the_platforms_defaults() -> None:
    config = parse_sources({"ad_platforms": GOOD})
    accounts = config.ad_platforms["demo-brand"]
    assert accounts.tencent_ads is not None and accounts.tencent_ads.base_url == "https://api.e.qq.com/v1.3"
    assert accounts.ocean_engine is not None and accounts.ocean_engine.base_url == "http://127.0.0.1:9"
    # And the token is a secret: it is not in the model's text
    assert "t-token" not in repr(accounts)
    # And each platform is an adapter with retries; a platform the brand names nothing for is None
    platforms = SourceAdPlatforms(StaticSources(config))
    assert isinstance(platforms.platform("demo-brand", "tencent_ads"), RetryingAdPlatform)
    assert platforms.platform("demo-outlet", "tencent_ads") is None
    only_tencent = parse_sources({"ad_platforms": {"b": {"tencent_ads": GOOD["demo-brand"]["tencent_ads"]}}})
    assert SourceAdPlatforms(StaticSources(only_tencent)).platform("b", "ocean_engine") is None


@pytest.mark.parametrize(
    ("accounts", "path"),
    [
        ({"tencent_ads": {"account_id": "acct-1", "access_token": "t"}}, "ad_platforms.b.tencent_ads.account_id"),
        ({"tencent_ads": {"account_id": "1"}}, "ad_platforms.b.tencent_ads.access_token"),
        (
            {"ocean_engine": {"advertiser_id": "1", "access_token": "t", "base_url": "http://ads.example"}},
            "ad_platforms.b.ocean_engine.base_url",
        ),
        (
            {"ocean_engine": {"advertiser_id": "1", "access_token": "t", "secret": "x"}},
            "ad_platforms.b.ocean_engine.secret",
        ),
        ({"baidu": {}}, "ad_platforms.b.baidu"),
        (
            {"tencent_ads": {"account_id": "1", "access_token": "t", "timeout_s": 60}},
            "ad_platforms.b.tencent_ads.timeout_s",
        ),
    ],
)
def test_a_bad_account_fails_the_document_naming_its_path(accounts: dict[str, object], path: str) -> None:
    with pytest.raises(SourcesConfigError) as bad:
        parse_sources({"ad_platforms": {"b": accounts}})
    assert path in str(bad.value)
