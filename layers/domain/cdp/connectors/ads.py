"""Ad platform callbacks (`POST /v1/webhooks/ads/{platform}`, e.g. oceanengine, tencent-ads): ad clicks and lead
forms, signed with our scheme (x-cdp-signature: t=<unix>,v1=<hmac>, 300 s replay window). One callback per request,
or {"records": [...]}.

    click: {"type": "click", "click_id", "campaign_id", "adgroup_id", "ad_id", "placement",
            "device": {"oaid", "idfa", "android_id"}, "ip", "ua", "ts"}
    lead:  {"type": "lead", "lead_id", "click_id", "campaign_id", "adgroup_id", "ad_id", "form_id",
            "phone", "email", "name", "city", "ts"}

`ts` is unix time in seconds or milliseconds (Ocean Engine's __TS__ macro is milliseconds). click -> ad_clicked with
the click id (ad_click_id scoped by the platform) and the device ids; lead -> lead_submitted with the click id, phone
and e-mail (name and city ride along in properties). The click id is what ties a click on a device to the lead form
that followed it, and so the ad to the person: their first ad touch becomes the profile's acquisition source.
Event ids are "{platform}:click:{click_id}" and "{platform}:lead:{lead_id}": a re-sent callback is a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    event_dict,
    ident,
    map_items,
    obj,
    present,
    require,
)
from cdp.connectors.pos import records, signed_source
from cdp.connectors.sources import SourcesConfig

TYPES = ("click", "lead")
DEVICE_FIELDS = ("oaid", "idfa", "android_id")
_NO_VALUE = frozenset({"null", "none", "unknown", "undefined", "nil"})
_MS_THRESHOLD = 10**11  # a unix time above this is in milliseconds (10**11 s is the year 5138)


class AdsConnector(Connector):
    name = "ads"
    max_body_bytes = 256 * 1024

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        source = signed_source(secrets.ads, request, "ad platform")
        return Binding(brand_id=source.brand_id, label=f"ads:{request.key}", store_id=source.store_id, channel="ads")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        items, batch = records(request.body)
        platform = (request.key or "").lower()

        def one(callback: Any) -> list[dict[str, Any]]:
            if not isinstance(callback, dict):
                raise MappingError("", "each callback must be a JSON object")
            return [_callback(callback, platform, binding)]

        return map_items(items, one, prefix="records" if batch else "", id_field="click_id", batch=batch)


def device_ids(device: dict[str, Any]) -> list[dict[str, Any]]:
    """The real device ids: a zeroed IDFA (tracking limited) or an unreplaced __OAID__ macro would link strangers."""
    out = []
    for name in DEVICE_FIELDS:
        value = str(device.get(name) or "").strip()
        if not value or value.startswith("__") or value.lower() in _NO_VALUE or not value.strip("0-"):
            continue
        out.append(ident("device_id", value))
    return present(*out)


def _time(callback: dict[str, Any]) -> datetime:
    ts = require(callback, "ts", (int, str))
    try:
        value = int(ts)
        return datetime.fromtimestamp(value / 1000 if value > _MS_THRESHOLD else value, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise MappingError("ts", "ts must be unix seconds or milliseconds") from exc


def _callback(callback: dict[str, Any], platform: str, binding: Binding) -> dict[str, Any]:
    kind = require(callback, "type")
    if kind not in TYPES:
        raise MappingError("type", f"unknown callback type {kind!r}; expected one of {', '.join(TYPES)}")
    ad = {k: _id(callback, k) for k in ("campaign_id", "adgroup_id", "ad_id")}
    click_id = _id(callback, "click_id")
    if kind == "click":
        if click_id is None:
            raise MappingError("click_id", "click_id is required")
        properties = {"platform": platform, "click_id": click_id, **ad, "placement": callback.get("placement")}
        return event_dict(
            event_type="ad_clicked",
            event_id=f"{platform}:click:{click_id}",
            source="ads",
            binding=binding,
            occurred_at=_time(callback),
            identifiers=present(ident("ad_click_id", click_id, platform), *device_ids(obj(callback, "device"))),
            properties=_clean(properties),
            context={"ip": str(callback.get("ip") or ""), "user_agent": str(callback.get("ua") or "")[:512]},
        )
    lead_id = str(require(callback, "lead_id", (str, int)))
    identifiers = present(
        ident("ad_click_id", click_id, platform),
        ident("phone", callback.get("phone")),
        ident("email", callback.get("email")),
    )
    if not identifiers:
        raise MappingError("phone", "a lead needs a phone, an email or a click_id")
    properties = {
        "platform": platform,
        "lead_id": lead_id,
        "click_id": click_id,
        **ad,
        "form_id": _id(callback, "form_id"),
        "name": callback.get("name"),
        "city": callback.get("city"),
    }
    return event_dict(
        event_type="lead_submitted",
        event_id=f"{platform}:lead:{lead_id}",
        source="ads",
        binding=binding,
        occurred_at=_time(callback),
        identifiers=identifiers,
        properties=_clean(properties),
    )


def _id(callback: dict[str, Any], name: str) -> str | None:
    """Platforms send ids as numbers or strings (Tencent's adgroup ids are 64-bit numbers)."""
    value = callback.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MappingError(name, f"{name} must be a string or an integer")
    return str(value)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}
