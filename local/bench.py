"""`cdp bench`: events/s through the local pipeline and the AWS cost per 1M events, metered as AWS meters it.

Every figure goes to bench-output/results.json as {"metric name": {"value": number, "unit": "..."}}; later
benchmarks add their own metrics to the same file.

Costs (`cdp_local.cost_model`, observed by `cdp_local.aws_costs`): DynamoDB by item size (1 KB per write of the
larger item before/after, 2x in transactions; 4 KB per read, half when eventually consistent), EventBridge and SQS
per 64 KB chunk, Lambda by a modelled duration (the handler's own CPU + a latency per AWS call, not wall time under
the emulator), HTTP API requests per 512 KB, S3 requests by tier, and CloudWatch Logs for what the functions log at
the deployed log level. Metrics per 1M accepted events:
- pipeline.cost_per_1m_events_usd (total) and .<price key> (as before: dynamodb_wru, lambda_gb_seconds, ...)
- pipeline.cost.<service>.usd, and per operation pipeline.cost.<service>.<Operation>.{calls,<unit>,usd}
  (for Lambda the operation is the function: requests, gb_seconds; for logs the function that logged)
- pipeline.billed_<unit>_per_event for the units the issue's targets name (wru, rru, eventbridge events, ...)
- pipeline.lambda.<function>.billed_ms (mean warm invocation) and .cold_start_ms

The brands' points programmes the platform keeps (`loyalty.programs`, `system_of_record: platform`) earn on every
order, so those figures are the data plane's and the programmes' together. `pipeline_loyalty_split` (what `cdp bench`
runs) posts the same events twice, first with those programmes taken out of the org config (reported programmes stay),
then with the config as it is (the figures above, under the same names), and adds:
- pipeline.data_plane.<figure>: ingest -> identity -> tags (and what they feed) without a platform programme
- pipeline.platform_loyalty.<figure>: what the programmes add (with minus without), e.g. .cost_per_1m_events_usd
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdp_local import cost_model
from cdp_local.aws_costs import ApiCallCounter, OpUsage, usage_totals

if TYPE_CHECKING:
    from cdp.org import OrgDirectory
    from cdp_local.runtime import LocalRuntime

Metric = dict[str, float | str]
Progress = Callable[[int, int], None]


def record(results: dict[str, Metric], path: Path) -> None:
    """Merge figures into the results file (other benchmarks' figures are kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    existing.update(results)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def batches(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def deployed_log_level() -> str:
    """The functions' log level in the stack (infra/config.py): what CloudWatch Logs would ingest."""
    from infra.config import DeployConfig

    return str(DeployConfig.model_fields["log_level"].default)


@contextmanager
def metered_runtime(counter: ApiCallCounter) -> Iterator[tuple[LocalRuntime, ExitStack]]:
    """A local runtime whose AWS calls `counter` meters as deployed: its own clients (Lambda invoke, the queues' event
    source mapping) and, once moto is up, the handlers' (made on first use), with Lambda time and logs measured; the
    secrets cached per container as deployed. The stack holds what the bench enters beside it; the counter comes off
    on exit."""
    from cdp.connectors.aws import SecretsManagerSources
    from cdp_local.runtime import LocalRuntime
    from cdp_local.runtime.core import _session as runtime_session

    if SecretsManagerSources.TTL_S < 60:
        raise RuntimeError("the sources secret must be cached per container (TTL_S), as deployed")
    counter.install(runtime_session())
    try:
        with ExitStack() as stack:
            rt = stack.enter_context(LocalRuntime(log_level=deployed_log_level()))
            counter.install()
            counter.measure_lambda()
            counter.measure_logs()
            yield rt, stack
    finally:
        counter.uninstall()


def pipeline_benchmark(
    events: list[dict[str, Any]],
    batch_size: int = 100,
    progress: Progress | None = None,
    env_overrides: Mapping[str, str] | None = None,
) -> dict[str, Metric]:
    """Post `events` through the HTTP API, drain identity and tags, and price what it took (`env_overrides`: the
    runtime's environment, e.g. another org config)."""
    from cdp_local.runtime import LocalRuntime
    from cdp_local.runtime.core import _session as runtime_session

    counter = ApiCallCounter()
    counter.install(runtime_session())  # the runtime's own clients (Lambda invoke, SQS polling), made on entry
    try:
        with LocalRuntime(log_level=deployed_log_level(), env_overrides=env_overrides) as rt:
            counter.install()  # after moto started: the handlers make their clients on first use
            counter.measure_lambda()
            counter.measure_logs()  # counted, not printed
            counter.reset()  # provisioning is not a per-event cost
            headers = {"content-type": "application/json", "x-api-key": rt.api_key}
            accepted = 0
            ingest_s = drain_s = 0.0
            done = 0
            for chunk in batches(events, batch_size):
                body = json.dumps({"batch": chunk}).encode()
                t0 = time.perf_counter()
                response = rt.http("POST", "/v1/events", body, headers)
                t1 = time.perf_counter()
                rt.drain()
                t2 = time.perf_counter()
                counter.add(
                    "apigateway.HttpApiRequest",
                    {"http_api_requests": cost_model.http_request_units("/v1/events", body, headers)},
                )
                accepted += json.loads(response.body).get("accepted", 0)
                ingest_s += t1 - t0
                drain_s += t2 - t1
                done += len(chunk)
                if progress:
                    progress(done, len(events))
            usage = counter.settled()
            unbilled = Counter(counter.unbilled)
            # the drain loop's own bookkeeping (GetQueueAttributes, empty polls) has no counterpart on AWS
            local = Counter({name.split(":")[0]: n for name, n in unbilled.items()})
            calls = {name: n - local[name] for name, n in counter.calls.items()}  # 0 kept: overwrites an old figure
            unpriced = Counter(counter.unpriced)
            wru_by_item = Counter(counter.wru_by_item)
            warm_ms = {fn: list(ms) for fn, ms in counter.lambda_ms.items()}
            cpu_ms = {fn: list(ms) for fn, ms in counter.lambda_cpu_ms.items()}
            latency_ms = {fn: list(ms) for fn, ms in counter.lambda_latency_ms.items()}
            cold_ms = dict(counter.cold_ms)
            counter.uninstall()
            # Each person's latest tag changes ride on their tags item until a write files them as a history
            # chunk (in BatchWriteItem): billed here, so the figure is the steady-state cost.
            deferred, deferred_calls = _pending_history(rt)
            filing = usage.setdefault("dynamodb.BatchWriteItem", OpUsage())
            filing.units["dynamodb_wru"] += deferred
            filing.calls += deferred_calls
            calls["dynamodb.BatchWriteItem"] = calls.get("dynamodb.BatchWriteItem", 0) + deferred_calls
            wru_by_item["H"] += deferred
    finally:
        counter.uninstall()
    per_event = 1 / max(accepted, 1)
    out: dict[str, Metric] = {
        "pipeline.events": {"value": len(events), "unit": "events"},
        "pipeline.accepted": {"value": accepted, "unit": "events"},
        "pipeline.events_per_s": {"value": round(accepted / (ingest_s + drain_s), 1), "unit": "events/s"},
        "pipeline.ingest_events_per_s": {"value": round(accepted / ingest_s, 1), "unit": "events/s"},
        "pipeline.identity_and_tags_events_per_s": {"value": round(accepted / drain_s, 1), "unit": "events/s"},
        "pipeline.aws_api_calls_per_event": {"value": round(sum(calls.values()) * per_event, 2), "unit": "calls"},
    }
    out |= cost_metrics(usage, accepted)
    for function in sorted(warm_ms.keys() | cold_ms.keys()):
        warm = warm_ms.get(function, [])
        if warm:
            n = len(warm)
            out[f"pipeline.lambda.{function}.billed_ms"] = {"value": round(sum(warm) / n, 1), "unit": "ms"}
            own = sum(cpu_ms[function]) / n
            out[f"pipeline.lambda.{function}.own_cpu_ms"] = {"value": round(own, 2), "unit": "ms (one core here)"}
            latency = sum(latency_ms[function]) / n
            out[f"pipeline.lambda.{function}.call_latency_ms"] = {"value": round(latency, 1), "unit": "ms (modelled)"}
        if function in cold_ms:
            out[f"pipeline.lambda.{function}.cold_start_ms"] = {"value": cold_ms[function], "unit": "ms"}
    for name, n in sorted(unbilled.items()):
        out[f"pipeline.unbilled_calls_per_event.{name}"] = {"value": round(n * per_event, 3), "unit": "calls"}
    for name, n in sorted(unpriced.items()):
        out[f"pipeline.unpriced_calls_per_event.{name}"] = {"value": round(n * per_event, 3), "unit": "calls"}
    for kind, n in sorted(wru_by_item.items()):
        out[f"pipeline.wru_per_event_by_item.{kind}"] = {"value": round(n * per_event, 3), "unit": "wru"}
    for name, n in sorted(calls.items()):
        out[f"pipeline.calls_per_event.{name}"] = {"value": round(n * per_event, 3), "unit": "calls"}
    return out


DATA_PLANE = "pipeline.data_plane"
PLATFORM_LOYALTY = "pipeline.platform_loyalty"
_SPLIT_FIGURES = (  # the figures shown apart (after "pipeline."); more by prefix in `_split_figure`
    "aws_api_calls_per_event",
    "billed_wru_per_event",
    "billed_rru_per_event",
    "billed_eventbridge_events_per_event",
    "billed_sqs_requests_per_event",
    "lambda_invocations_per_event",
    "lambda_gb_seconds_per_event",
    "cost_per_1m_events_usd",
)


def platform_programs(org: OrgDirectory) -> list[str]:
    """The programmes the platform keeps, as brand/programme."""
    return sorted(
        f"{brand_id}/{name}"
        for brand_id, brand in org.brands.items()
        for name, program in brand.loyalty.programs.items()
        if program.system_of_record == "platform"
    )


def without_platform_programs(org: OrgDirectory) -> OrgDirectory:
    """The org with every programme the platform keeps taken out (reported programmes stay): identity then hands
    no order to the loyalty engine."""
    brands = {}
    for brand_id, brand in org.brands.items():
        kept = {n: p for n, p in brand.loyalty.programs.items() if p.system_of_record != "platform"}
        brands[brand_id] = brand.model_copy(update={"loyalty": brand.loyalty.model_copy(update={"programs": kept})})
    return org.model_copy(update={"brands": brands})


def pipeline_loyalty_split(
    events: list[dict[str, Any]],
    batch_size: int = 100,
    progress: Callable[[str], Progress | None] | None = None,
) -> dict[str, Metric]:
    """`pipeline_benchmark` over the same events twice: first without the programmes the platform keeps (the data
    plane's own figures, `pipeline.data_plane.*`), then with the org config as it is (every `pipeline.*` figure, as
    before), and what the programmes add (`pipeline.platform_loyalty.*`: with minus without). `progress(label)`
    gives each run's progress callback."""
    from cdp.org import ORG_CONFIG_ENV, load_org

    org = load_org()
    programs = platform_programs(org)
    if programs:
        with tempfile.TemporaryDirectory(prefix="cdp-bench-org-") as tmp:
            path = Path(tmp) / "org.json"
            path.write_text(json.dumps(without_platform_programs(org).model_dump(mode="json", exclude_defaults=True)))
            label = "pipeline without platform loyalty"
            plain = pipeline_benchmark(
                events, batch_size, progress(label) if progress else None, env_overrides={ORG_CONFIG_ENV: str(path)}
            )
    label = f"pipeline with {', '.join(programs)}" if programs else "pipeline"
    full = pipeline_benchmark(events, batch_size, progress(label) if progress else None)
    if not programs:
        plain = full
    if plain["pipeline.accepted"]["value"] != full["pipeline.accepted"]["value"]:
        raise RuntimeError(f"the two runs accepted {plain['pipeline.accepted']} and {full['pipeline.accepted']}")
    out = dict(full)
    out[f"{PLATFORM_LOYALTY}.programs"] = {"value": len(programs), "unit": ", ".join(programs) or "programmes"}
    out[f"{DATA_PLANE}.events_per_s"] = plain["pipeline.events_per_s"]
    for name in sorted(plain.keys() | full.keys()):
        figure = name.removeprefix("pipeline.")
        if not _split_figure(figure):
            continue
        metric = plain.get(name) or full[name]
        without = float(plain[name]["value"]) if name in plain else 0.0
        with_ = float(full[name]["value"]) if name in full else 0.0
        out[f"{DATA_PLANE}.{figure}"] = {"value": without, "unit": metric["unit"]}
        out[f"{PLATFORM_LOYALTY}.{figure}"] = {"value": round(with_ - without, 5), "unit": metric["unit"]}
    total = float(full["pipeline.cost_per_1m_events_usd"]["value"])
    own = float(out[f"{PLATFORM_LOYALTY}.cost_per_1m_events_usd"]["value"])
    out[f"{PLATFORM_LOYALTY}.cost_share"] = {"value": round(100 * own / total, 1) if total else 0.0, "unit": "%"}
    return out


def _split_figure(figure: str) -> bool:
    """Shown apart for the data plane and the programmes: the per-event and total figures, the cost by price key,
    the dollars by service and by operation, and the calls per event by operation."""
    return (
        figure in _SPLIT_FIGURES
        or figure.startswith(("cost_per_1m_events_usd.", "calls_per_event."))
        or (figure.startswith("cost.") and figure.endswith(".usd"))
    )


def _pending_history(rt: Any) -> tuple[int, int]:
    """Write units of the history chunks that tags items still carry (each person's write that outgrows carrying
    them files them: billed here, so the figure is the steady-state cost)."""
    from cdp import topology
    from cdp.shared.dynamo import from_item, to_item
    from cdp.tags.dynamodb import carried_entries, history_chunk_items

    pages = (
        rt.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=topology.PROFILES_TABLE.local_name,
            FilterExpression="#sk = :tags",
            ExpressionAttributeNames={"#sk": "sk"},
            ExpressionAttributeValues={":tags": {"S": "TAGS"}},
        )
    )
    wru = calls = 0
    for page in pages:
        for raw in page["Items"]:
            item = from_item(raw)
            chunks = history_chunk_items(item["person_id"], carried_entries(item))
            calls += -(-len(chunks) // 25)
            wru += sum(cost_model.write_units(0, cost_model.item_size(to_item(chunk))) for chunk in chunks)
    return wru, calls


_UNIT_PER_EVENT = {  # the per-event figures the targets are stated in
    "dynamodb_wru": "pipeline.billed_wru_per_event",
    "dynamodb_rru": "pipeline.billed_rru_per_event",
    "eventbridge_events": "pipeline.billed_eventbridge_events_per_event",
    "sqs_requests": "pipeline.billed_sqs_requests_per_event",
    "lambda_requests": "pipeline.lambda_invocations_per_event",
    "lambda_gb_seconds": "pipeline.lambda_gb_seconds_per_event",
}


def cost_metrics(usage: dict[str, OpUsage], accepted: int) -> dict[str, Metric]:
    """Dollars and billed units per 1M accepted events: in total, by price key, by service and by operation."""
    scale = 1_000_000 / max(accepted, 1)
    totals = usage_totals(usage)
    usd_by_key = cost_model.cost_usd(dict(totals))
    out: dict[str, Metric] = {
        "pipeline.cost_per_1m_events_usd": {"value": round(sum(usd_by_key.values()) * scale, 2), "unit": "USD"},
    }
    for key, usd in usd_by_key.items():
        out[f"pipeline.cost_per_1m_events_usd.{key}"] = {"value": round(usd * scale, 4), "unit": "USD"}
    for key, name in _UNIT_PER_EVENT.items():
        out[name] = {"value": round(totals.get(key, 0.0) / max(accepted, 1), 5), "unit": cost_model.PRICES[key].short}
    out["pipeline.log_kb_per_event"] = {
        "value": round(totals.get("cloudwatch_logs_gb", 0.0) * 1024**2 / max(accepted, 1), 3),
        "unit": "KB",
    }
    by_service: dict[str, list[tuple[str, OpUsage]]] = {}
    for op, op_usage in usage.items():
        by_service.setdefault(op.split(".", 1)[0], []).append((op, op_usage))
    for service, ops in sorted(by_service.items(), key=lambda item: -sum(u.usd() for _, u in item[1])):
        service_usd = sum(u.usd() for _, u in ops)
        out[f"pipeline.cost.{service}.usd"] = {"value": round(service_usd * scale, 4), "unit": "USD/1M events"}
        for op, op_usage in sorted(ops, key=lambda item: -item[1].usd()):
            if op_usage.calls:  # logs are billed to a function, not made by calls
                out[f"pipeline.cost.{op}.calls"] = {"value": round(op_usage.calls * scale), "unit": "calls/1M events"}
            for key, n in sorted(op_usage.units.items()):
                short = cost_model.PRICES[key].short
                out[f"pipeline.cost.{op}.{short}"] = {"value": round(n * scale, 3), "unit": f"{short}/1M events"}
            out[f"pipeline.cost.{op}.usd"] = {"value": round(op_usage.usd() * scale, 4), "unit": "USD/1M events"}
    return out
