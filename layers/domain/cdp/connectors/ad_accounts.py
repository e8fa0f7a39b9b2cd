"""The brand's ad accounts that audiences are uploaded to, kept in the sources secret under `ad_platforms` (brand id ->
`BrandAdPlatforms`): per platform the account and its access token (`cdp.activation` uses them).

    "ad_platforms": {"demo-brand": {
      "tencent_ads": {"account_id": "25610", "access_token": "..."},
      "ocean_engine": {"advertiser_id": "1760312309087432", "access_token": "..."}}}

The access tokens are the ones the platforms' OAuth flows issue (Tencent Ads: 24 hours, Ocean Engine: 24 hours);
refreshing them is the brand's token service's job, which writes the current token here (the document is re-read
every 5 minutes). A platform the brand names no account for cannot be activated to (a 400 naming it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cdp.connectors.sender_accounts import ProviderUrl

AccountId = Field(pattern=r"^[0-9]{1,20}$", description="the platform's numeric id, as a string")


class _AdAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    access_token: SecretStr = Field(description="the OAuth access token the platform issued for this account")
    timeout_s: float = Field(
        default=6.0,
        gt=0,
        le=20,
        description="per call (a file of one request's 10,000 members is ~200 KB); 3 attempts of 6 s and the waits "
        "between them stay inside the API's 29 s",
    )


class TencentAdsAccount(_AdAccount):
    """Tencent Ads (腾讯广告) Marketing API: customer-file audiences of one advertiser account."""

    account_id: str = AccountId
    base_url: ProviderUrl = Field(
        default="https://api.e.qq.com/v1.3", description="the API's versioned base (v1.3; v3.0 speaks the same here)"
    )


class OceanEngineAccount(_AdAccount):
    """Ocean Engine (巨量引擎) Marketing API: DMP data sources of one advertiser."""

    advertiser_id: str = AccountId
    base_url: ProviderUrl = Field(default="https://api.oceanengine.com", description="the API's host")


class BrandAdPlatforms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tencent_ads: TencentAdsAccount | None = None
    ocean_engine: OceanEngineAccount | None = None
