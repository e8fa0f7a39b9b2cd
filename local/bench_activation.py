"""`cdp bench --suite activation`: what uploading an audience to an ad platform costs per 1M persons at AWS list
prices, and how fast it goes.

One local runtime; demo-brand's ad accounts in the sources secret point at the loopback fakes of Tencent Ads and
Ocean Engine (`cdp_local.fakes.ad_platforms.LocalAdPlatforms`, as `cdp serve` runs them).

1. `persons` persons opted in to marketing SMS are made through the real ingest path (`consent_changed` events with
   a mainland mobile number, posted to /v1/events in batches of 100 and drained), plus one more opted in to e-mail
   only (the warm-up's). Two static audiences are defined and snapshotted through the audience API: the SMS ones
   (`consent_sms`) and the warm-up's person (`consent_email`).
2. The warm-up audience is activated to each platform first: the function's first activation reads the sources
   secret (cached 5 minutes per container, as deployed), so the figures are a warm container's.
3. The snapshot is activated to each platform through the real route, as `cdp audience activate` does it: `POST
   /v1/audiences/{id}/activations` with `in_parts`, then `POST .../continue` while it is `in_progress` (one request
   per `part_size` members, 10,000 as deployed). Timed by the wall clock (the fake platform's own work included),
   and metered: the HTTP API requests (per 512 KB), the audience function's invocations and modelled GB-s, what it
   logs, and its AWS calls billed as AWS bills them (the manifest, the members files and the activation record in
   S3 by request tier; the profiles' BatchGetItem by item size; Secrets Manager per call: none in a warm container).
   The platform's own calls are not AWS and are not billed; the time the function waits for their answers is not
   in its modelled duration either (the loopback answers in milliseconds; across the internet each second a part's
   file takes is 1.73 GB-s at 1,769 MB, about $0.003 per 1M persons at 10,000 a part).
   What reached each fake is checked against the persons' hashes (MD5 at Tencent, SHA-256 at Ocean Engine).

Every figure is per person uploaded, in activations of `persons` persons: a request's fixed part (the HTTP request,
the audience, manifest and members GETs, the record's two PUTs) is spread over the part's members, so it weighs
most in a small activation (`cost_per_activation_usd` is the whole). The default, 10,000, is one deployed part: a
1M-person activation is 100 such requests, so the figure is its cost per 1M too, nearly: its later parts also read
the members files before theirs (50,000 ids a file), about 1,000 GETs more in all, $0.0004 (the ingest of the
persons takes most of the suite's minute or so).
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp_local import cost_model
from cdp_local.aws_costs import (
    ApiCallCounter,
    OpUsage,
    is_sdk_call,
    merge_usage,
    usage_totals,
    usage_usd,
)
from cdp_local.bench import Metric, batches, metered_runtime

BRAND = "demo-brand"
PERSONS = 10_000  # one deployed part (PART_SIZE)
AUDIENCE = "bench_activation"
WARM_AUDIENCE = "bench_activation_warm"
EVENTS_PER_POST = 100
PLATFORMS = ("tencent_ads", "ocean_engine")


def phone(i: int) -> str:
    """Person i's mobile number (11 digits, mainland); the warm-up's person is -1."""
    return "13600000000" if i < 0 else f"137{i:08d}"


def platform_hash(platform: str, i: int) -> str:
    """What the platform should receive for person i: the hash of the 11-digit number it matches on."""
    from cdp.activation.hashing import phone_md5, phone_sha256

    hashed = (phone_md5 if platform == "tencent_ads" else phone_sha256)(f"+86{phone(i)}")
    assert hashed is not None
    return hashed


def _consent(i: int, at: str) -> dict[str, Any]:
    channel = "email" if i < 0 else "sms"
    return {
        "event_id": f"bench-activation-consent-{i}",
        "event_type": "consent_changed",
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": at,
        "identifiers": [{"type": "phone", "value": phone(i)}],
        "properties": {"channel": channel, "granted": True, "purpose": "marketing"},
    }


def _audience(audience_id: str, attr: str) -> dict[str, Any]:
    return {
        "id": audience_id,
        "name": f"bench: {attr}",
        "kind": "static",
        "include": {"attr": attr, "eq": True},
        "owner": "bench",
    }


@dataclass
class _Activation:
    platform: str
    record: dict[str, Any]
    requests: int
    seconds: float
    usage: dict[str, OpUsage]
    billed_ms: list[int]  # the audience function's warm invocations
    platform_calls: int
    held: set[str] = field(default_factory=set)  # the hashes the platform's audience holds


class _Run:
    """One benchmark run on an open runtime with demo-brand's ad accounts on the loopback."""

    def __init__(self, rt: Any, counter: ApiCallCounter, fakes: Any, persons: int) -> None:
        self.rt = rt
        self.counter = counter
        self.fakes = fakes
        self.persons = persons
        self.headers = {"content-type": "application/json", "x-api-key": rt.admin_key}

    def call(self, method: str, path: str, payload: Any, expect: int) -> dict[str, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        response = self.rt.http(method, path, body, self.headers)
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {response.body[:300]!r}")
        self.counter.add(
            "apigateway.HttpApiRequest", {"http_api_requests": cost_model.http_request_units(path, body, self.headers)}
        )
        answer: dict[str, Any] = json.loads(response.body)
        return answer

    def make_persons(self) -> None:
        """The persons through ingest: one `consent_changed` each, 100 a request, drained after each."""
        headers = {"content-type": "application/json", "x-api-key": self.rt.api_key}
        at = datetime.now(UTC).isoformat()
        events = [_consent(i, at) for i in range(-1, self.persons)]
        for chunk in batches(events, EVENTS_PER_POST):
            response = self.rt.http("POST", "/v1/events", json.dumps({"batch": chunk}).encode(), headers)
            if response.status != 202 or json.loads(response.body).get("accepted") != len(chunk):
                raise RuntimeError(f"POST /v1/events: {response.status} {response.body[:300]!r}")
            self.rt.drain()

    def snapshots(self) -> None:
        for audience_id, attr, count in ((AUDIENCE, "consent_sms", self.persons), (WARM_AUDIENCE, "consent_email", 1)):
            self.call("POST", "/v1/audiences", _audience(audience_id, attr), 201)
            manifest = self.call("POST", f"/v1/audiences/{audience_id}/export", {}, 201)
            if manifest["count"] != count:
                raise RuntimeError(f"snapshot of {audience_id}: {manifest['count']} members, {count} made")

    def activate(self, audience_id: str, platform: str, consent: str) -> tuple[dict[str, Any], int]:
        """As `cdp audience activate` does: in parts, continued until complete. (the record, requests made)"""
        base = f"/v1/audiences/{audience_id}/activations"
        body = {"brand_id": BRAND, "platform": platform, "consent_channel": consent, "in_parts": True}
        record = self.call("POST", base, body, 201)
        requests = 1
        while record["status"] == "in_progress":
            record = self.call("POST", f"{base}/{record['activation_id']}/continue", None, 200)
            requests += 1
        if record["status"] != "complete":
            raise RuntimeError(f"activation to {platform}: {record['status']} {record.get('error')}")
        return record, requests

    def warm_up(self) -> None:
        for platform in PLATFORMS:
            self.activate(WARM_AUDIENCE, platform, "email")

    def set_part_size(self, part_size: int) -> None:
        """The audience function's members per request (a test's smaller part takes the /continue route): set on
        the warm container's service, which the handler module made on its first request."""
        from cdp import topology

        module = sys.modules[topology.AUDIENCE_API.handler.rpartition(".")[0]]
        module.dependencies().activations._part_size = part_size

    def measured(self, platform: str) -> _Activation:
        from cdp import topology

        fake = self._fake(platform)
        calls_before = len(fake.calls)
        self.counter.reset()
        t0 = time.perf_counter()
        record, requests = self.activate(AUDIENCE, platform, "sms")
        seconds = time.perf_counter() - t0
        usage = self.counter.settled()
        billed_ms = list(self.counter.lambda_ms.get(topology.AUDIENCE_API.key, []))
        done = _Activation(platform, record, requests, seconds, usage, billed_ms, len(fake.calls) - calls_before)
        done.held = self._held(platform, record["platform_audience_id"])
        return done

    def _fake(self, platform: str) -> Any:
        return self.fakes.tencent_ads if platform == "tencent_ads" else self.fakes.ocean_engine

    def _held(self, platform: str, audience_ref: str | None) -> set[str]:
        if audience_ref is None:
            return set()
        if platform == "tencent_ads":
            return set(self.fakes.tencent_ads.audience_ids(audience_ref))
        return {item.id for item in self.fakes.ocean_engine.data_source_ids(audience_ref)}


def activation_benchmark(persons: int = PERSONS, part_size: int | None = None) -> dict[str, Metric]:
    """Make `persons` opted-in persons, snapshot them, and activate the snapshot to each platform's loopback fake
    (`part_size`: members per request, default the deployed 10,000)."""
    from cdp.activation.service import PART_SIZE
    from cdp_local.fakes.ad_platforms import LocalAdPlatforms

    if persons < 1 or (part_size is not None and part_size < 1):
        raise ValueError("persons and part_size must be at least 1")
    counter = ApiCallCounter()
    with metered_runtime(counter) as (rt, stack):
        run = _Run(rt, counter, stack.enter_context(LocalAdPlatforms(rt, BRAND)), persons)
        run.make_persons()
        run.snapshots()
        run.warm_up()
        if part_size is not None:
            run.set_part_size(part_size)
        done = [run.measured(platform) for platform in PLATFORMS]
    return _report(persons, part_size or PART_SIZE, done)


# ---- the figures -------------------------------------------------------------------------------------------------


def _priced(prefix: str, usage: dict[str, OpUsage], n: int, note: str) -> dict[str, Metric]:
    """The cost per 1M persons (total and by service), AWS calls per person (total and by operation) and the billed
    units per person by price key."""
    per = 1 / max(n, 1)
    out: dict[str, Metric] = {
        f"{prefix}.cost_per_1m_persons_usd": {
            "value": round(usage_usd(usage) * 1_000_000 * per, 4),
            "unit": f"USD: {note}",
        },
        f"{prefix}.aws_calls_per_person": {
            "value": round(sum(u.calls for op, u in usage.items() if is_sdk_call(op)) * per, 4),
            "unit": "calls",
        },
    }
    by_service: defaultdict[str, float] = defaultdict(float)
    for op, op_usage in usage.items():
        by_service[op.split(".", 1)[0]] += op_usage.usd()
    for service, usd in sorted(by_service.items(), key=lambda item: -item[1]):
        if usd > 0:
            out[f"{prefix}.cost_per_1m_persons.{service}.usd"] = {
                "value": round(usd * 1_000_000 * per, 4),
                "unit": "USD",
            }
    for op, op_usage in sorted(usage.items()):
        if op_usage.calls and is_sdk_call(op):
            out[f"{prefix}.calls_per_person.{op}"] = {"value": round(op_usage.calls * per, 5), "unit": "calls"}
    for key, units in sorted(usage_totals(usage).items()):
        if units:
            price = cost_model.PRICES[key]
            out[f"{prefix}.billed_per_person.{key}"] = {"value": float(f"{units * per:.4g}"), "unit": price.unit}
    return out


def _platform_metrics(done: _Activation, persons: int, part_size: int) -> dict[str, Metric]:
    prefix = f"activation.{done.platform}"
    counts: dict[str, int] = done.record["counts"]
    expected = {platform_hash(done.platform, i) for i in range(persons)}
    uploaded = counts["uploaded"]
    reasons = sum(v for k, v in counts.items() if k not in ("members", "identifiers"))
    modelled_s = sum(done.billed_ms) / 1000
    out: dict[str, Metric] = {
        f"{prefix}.persons_uploaded": {"value": uploaded, "unit": f"of the snapshot's {counts['members']} members"},
        f"{prefix}.identifiers_uploaded": {"value": counts["identifiers"], "unit": "hashed mobile numbers"},
        f"{prefix}.counts_add_up": {
            "value": int(reasons == counts["members"] == done.record["next_offset"]),
            "unit": "1: every member read is counted once, uploaded or under the reason it was left out",
        },
        f"{prefix}.hashes_at_platform": {
            "value": len(done.held & expected),
            "unit": f"of the {persons} persons' hashes, held by the platform's audience",
        },
        f"{prefix}.hashes_missing": {"value": len(expected - done.held), "unit": "persons' hashes not at the platform"},
        f"{prefix}.hashes_unexpected": {"value": len(done.held - expected), "unit": "hashes of no bench person"},
        f"{prefix}.requests": {"value": done.requests, "unit": f"HTTP requests (one per {part_size:,} members)"},
        f"{prefix}.files": {"value": len(done.record["file_refs"]), "unit": "files uploaded to the platform"},
        f"{prefix}.platform_calls": {"value": done.platform_calls, "unit": "HTTP calls the platform received"},
        f"{prefix}.seconds": {"value": round(done.seconds, 3), "unit": "s wall clock, the fake platform included"},
        f"{prefix}.persons_per_s": {
            "value": round(uploaded / max(done.seconds, 1e-9), 1),
            "unit": "persons/s through the emulated API to the loopback platform",
        },
        f"{prefix}.lambda_billed_ms_per_request": {
            "value": round(modelled_s * 1000 / max(len(done.billed_ms), 1), 1),
            "unit": "ms: the audience function's modelled billed duration per request (the platform's answer time "
            "not included)",
        },
        f"{prefix}.modelled_aws_persons_per_s": {
            "value": round(uploaded / max(modelled_s, 1e-9), 1),
            "unit": "persons/s of the audience function on AWS by its modelled duration (the platform's answer time "
            "not included)",
        },
        f"{prefix}.cost_per_activation_usd": {
            "value": float(f"{usage_usd(done.usage):.4g}"),
            "unit": f"USD: the whole activation of {persons} persons",
        },
    }
    note = f"activations of {persons:,} persons, {part_size:,} members a request; the platform's own price not included"
    return out | _priced(prefix, done.usage, uploaded, note)


def _report(persons: int, part_size: int, done: list[_Activation]) -> dict[str, Metric]:
    out: dict[str, Metric] = {
        "activation.persons": {"value": persons, "unit": "persons in the snapshot, opted in to SMS through ingest"},
        "activation.part_size": {"value": part_size, "unit": "members one request reads (deployed: 10,000)"},
    }
    for activation in done:
        out |= _platform_metrics(activation, persons, part_size)
    uploaded = sum(a.record["counts"]["uploaded"] for a in done)
    note = f"both platforms alike, activations of {persons:,} persons; the platform's own price not included"
    return out | _priced("activation", merge_usage(*(a.usage for a in done)), uploaded, note)
