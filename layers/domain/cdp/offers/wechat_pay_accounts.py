"""Each brand's WeChat Pay merchant account from the sources secret (`SourcesConfig.wechat_pay`, re-read on the
registry's TTL): it pays the brand's red packets (API v2) and, with API v3 credentials, issues its cash coupons."""

from __future__ import annotations

from collections.abc import Callable

from cdp.connectors.sources import SourceRegistry, WeChatPayMerchant
from cdp.offers.external_coupons import ExternalCouponSystem, ExternalCouponSystems
from cdp.offers.red_packets import RedPacketProvider, RedPacketProviders
from cdp.offers.wechat_pay import WeChatPayRedPackets, XmlTransport, https_transport
from cdp.offers.wechat_pay_coupons import HttpTransport, WeChatPayCoupons, json_transport


class WeChatPayProviders(RedPacketProviders, ExternalCouponSystems):
    def __init__(
        self,
        sources: SourceRegistry,
        transport: Callable[[WeChatPayMerchant], XmlTransport] | None = None,
        v3_transport: Callable[[WeChatPayMerchant], HttpTransport] | None = None,
    ) -> None:
        self._sources = sources
        self._transport = transport or https_transport
        self._v3_transport = v3_transport or json_transport
        # a rotated key or certificate changes the merchant: a new client
        self._packets: dict[str, tuple[WeChatPayMerchant, WeChatPayRedPackets]] = {}
        self._coupons: dict[str, tuple[WeChatPayMerchant, WeChatPayCoupons]] = {}

    def for_brand(self, brand_id: str) -> RedPacketProvider | None:
        merchant = self._sources.sources().wechat_pay.get(brand_id)
        if merchant is None:
            return None
        built = self._packets.get(brand_id)
        if built is None or built[0] != merchant:
            built = (merchant, WeChatPayRedPackets(merchant, self._transport(merchant)))
            self._packets[brand_id] = built
        return built[1]

    def coupons_for(self, brand_id: str, system: str) -> ExternalCouponSystem | None:
        merchant = self._sources.sources().wechat_pay.get(brand_id)
        if system != WeChatPayCoupons.name or merchant is None or merchant.api_v3 is None:
            return None
        built = self._coupons.get(brand_id)
        if built is None or built[0] != merchant:
            built = (merchant, WeChatPayCoupons(merchant, self._v3_transport(merchant)))
            self._coupons[brand_id] = built
        return built[1]
