"""Observing the AWS calls a local run makes and billing them the way AWS meters them (`cdp_local.cost_model`).

`ApiCallCounter` hooks botocore's events on the sessions it is installed on: `before-parameter-build` sees the API
parameters (and, for DynamoDB writes, the size of each item before the write), `after-call` sees the parsed answer
(and the size of each item after). Item sizes are read from moto's DynamoDB backend state directly: exact (the item as
stored, whatever the request's projection or return values), and no extra API call is made or counted. Query and
Scan bill what they read before any filter or projection: moto evaluates a filter on every item it read, so while a
Query or Scan is open its filter is wrapped to size each item it sees (moto's `get_filter_expression`; a moto
upgrade that bypasses it fails tests/integration/test_aws_costs.py, whose filtered, projected Query must still bill
every item it read).

With `measure_lambda()` each handler invocation routed by `cdp_local.runtime` is timed on the thread's CPU clock; the
time spent inside AWS calls (moto's emulation) is removed and each call's modelled latency added
(`cost_model.CALL_LATENCY_MS`), which gives the billed duration. With `measure_logs()` what the product's Powertools
logger and metrics would write to CloudWatch Logs is counted instead of printed.

Calls that model AWS-managed plumbing are made by the runtime outside any handler (the SQS event source mapping's
ReceiveMessage / DeleteMessageBatch, API Gateway's and the mapping's Invoke): they are billed as AWS bills them to the
account. A ReceiveMessage that finds nothing and GetQueueAttributes outside a handler are the local drain loop's own
bookkeeping (a real mapping's idle long polls are a fixed cost per queue, not per event): counted, not billed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from cdp import topology
from cdp_local import cost_model as cm
from cdp_local.cost_model import LAMBDA_GB_SECOND, PRICE_PER_MILLION, PRICES

__all__ = ["LAMBDA_GB_SECOND", "PRICE_PER_MILLION", "ApiCallCounter", "OpUsage", "cost_usd"]

_S3_FREE = ("DeleteObject", "DeleteObjects", "AbortMultipartUpload")
_S3_PUT_TIER = ("Put", "Copy", "Post", "List", "Create", "Upload", "Complete", "Restore")
_LOCAL_ONLY = {("sqs", "GetQueueAttributes")}  # outside a handler: the drain loop's bookkeeping
_ITEM_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


@dataclass
class OpUsage:
    """One operation's calls and the units they billed, by price key."""

    calls: int = 0
    units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def usd(self) -> float:
        return sum(n * PRICES[key].usd_per_million / 1_000_000 for key, n in self.units.items())


def usage_totals(usage: dict[str, OpUsage]) -> defaultdict[str, float]:
    """The billed units of every operation together, by price key."""
    totals: defaultdict[str, float] = defaultdict(float)
    for op_usage in usage.values():
        for key, n in op_usage.units.items():
            totals[key] += n
    return totals


def usage_usd(usage: dict[str, OpUsage]) -> float:
    return sum(cm.cost_usd(dict(usage_totals(usage))).values())


def merge_usage(*usages: dict[str, OpUsage]) -> dict[str, OpUsage]:
    out: dict[str, OpUsage] = {}
    for usage in usages:
        for op, op_usage in usage.items():
            into = out.setdefault(op, OpUsage())
            into.calls += op_usage.calls
            for key, n in op_usage.units.items():
                into.units[key] += n
    return out


def is_sdk_call(op: str) -> bool:
    """An API call (not a function's invocation or its logs, which the counter keeps under the function)."""
    service, _, name = op.partition(".")
    return service != "logs" and (service != "lambda" or name == "Invoke")


def sdk_calls(usage: dict[str, OpUsage]) -> int:
    return sum(u.calls for op, u in usage.items() if is_sdk_call(op))


@dataclass
class _Invocation:
    function: str
    memory_mb: int
    cpu_start: float
    aws_cpu_s: float = 0.0
    latency_ms: float = 0.0


@dataclass
class _Call:
    service: str
    op: str
    params: dict[str, Any]
    region: str
    frame: _Invocation | None
    cpu_start: float
    before: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, key) -> item size before a write
    callee_ms: float = 0.0  # a synchronous Invoke waits for its callee


class ApiCallCounter:
    """Counts SDK calls by "service.Operation" and bills them (`by_op`: calls and billed units per operation)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.by_op: dict[str, OpUsage] = defaultdict(OpUsage)
        self.unbilled: Counter[str] = Counter()  # calls with no AWS counterpart (local bookkeeping)
        self.unpriced: Counter[str] = Counter()  # calls of services the model has no price for
        self.wru_by_item: Counter[str] = Counter()  # billed write units by item kind (the sort key's prefix)
        self.lambda_ms: defaultdict[str, list[int]] = defaultdict(list)  # billed ms per warm invocation, by function
        # The first invocation of a function imports its module and makes its clients: a cold start, which on AWS
        # happens once per execution environment, not per event. Its duration is kept apart and it is billed at
        # the function's mean warm duration (`settled`).
        self.cold_ms: dict[str, int] = {}
        # per warm invocation: the handler's own CPU here (before scaling to the function's vCPU share) and the
        # modelled latency of its AWS calls, by function
        self.lambda_cpu_ms: defaultdict[str, list[float]] = defaultdict(list)
        self.lambda_latency_ms: defaultdict[str, list[float]] = defaultdict(list)
        self._cold: dict[str, tuple[int, int]] = {}  # function -> (cold invocations since reset, memory MB)
        self._warmed: set[str] = set()  # not cleared by reset: the runtime's modules stay imported
        self._sessions: list[boto3.session.Session] = []
        self._undo: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._local = threading.local()
        self._lambda_measured = False
        self._reads_hooked = False

    # ---- installation ------------------------------------------------------------------------------------------

    def install(self, *sessions: boto3.session.Session) -> None:
        """Hook sessions (default: boto3's default session, made now if missing): every client made from them
        afterwards reports its calls here. moto resets boto3's default session when a mock starts, so install
        after the mock has started."""
        if not sessions:
            if boto3.DEFAULT_SESSION is None:
                boto3.setup_default_session()
            assert boto3.DEFAULT_SESSION is not None
            sessions = (boto3.DEFAULT_SESSION,)
        for session in sessions:
            session.events.register("before-parameter-build", self._on_call)
            session.events.register("after-call", self._on_result)
            session.events.register("after-call-error", self._on_error)
            self._sessions.append(session)
        if not self._reads_hooked:
            self._undo.append(_record_query_reads(self._local))
            self._reads_hooked = True

    def measure_lambda(self) -> None:
        """Bill each in-process handler invocation: one request and its modelled duration (see module doc)."""
        from cdp_local.runtime.lambdas import HandlerRouter

        original = HandlerRouter.call
        counter = self

        def call(router: HandlerRouter, spec: Any, event: Any) -> tuple[str, bool]:
            frame = _Invocation(spec.key, spec.memory_mb, time.thread_time())
            counter._frames().append(frame)
            try:
                return original(router, spec, event)
            finally:
                counter._frames().pop()
                counter._end_invocation(frame)

        HandlerRouter.call = call
        self._lambda_measured = True

        def restore() -> None:
            if HandlerRouter.call is call:  # else a later patch sits on top and restores it itself
                HandlerRouter.call = original
            self._lambda_measured = False

        self._undo.append(restore)

    def measure_logs(self) -> None:
        """Count what the product's logger and metrics would ingest into CloudWatch Logs, instead of printing it."""
        from cdp.observability import logger, metrics

        handler = logger.registered_handler
        sink = _LogSink(self)
        previous = handler.setStream(sink)  # type: ignore[attr-defined]
        clear = metrics.clear_metrics

        def clear_after_counting() -> None:
            # On Lambda `log_metrics` prints the metric set as one EMF line after each invocation; locally
            # metrics are disabled and the runtime only clears them: count the line it would have printed.
            try:
                emf = metrics.serialize_metric_set()
            except Exception:  # nothing recorded: nothing printed
                emf = None
            if emf:
                import json

                self._add_log(json.dumps(emf, separators=(",", ":")) + "\n")
            clear()

        metrics.clear_metrics = clear_after_counting  # type: ignore[method-assign]

        def restore() -> None:
            handler.setStream(previous)  # type: ignore[attr-defined]
            if metrics.clear_metrics is clear_after_counting:
                del metrics.clear_metrics  # the instance attribute: the class's method shows again

        self._undo.append(restore)

    def uninstall(self) -> None:
        for session in self._sessions:
            session.events.unregister("before-parameter-build", self._on_call)
            session.events.unregister("after-call", self._on_result)
            session.events.unregister("after-call-error", self._on_error)
        self._sessions.clear()
        while self._undo:
            self._undo.pop()()
        self._reads_hooked = False

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.by_op.clear()
            self.unbilled.clear()
            self.unpriced.clear()
            self.wru_by_item.clear()
            self.lambda_ms.clear()
            self.cold_ms.clear()
            self.lambda_cpu_ms.clear()
            self.lambda_latency_ms.clear()
            self._cold.clear()

    # ---- totals ------------------------------------------------------------------------------------------------

    def settled(self) -> dict[str, OpUsage]:
        """Usage by operation, cold starts billed at their function's mean warm duration (their own when the
        function never ran warm)."""
        with self._lock:
            out = {op: OpUsage(u.calls, defaultdict(float, u.units)) for op, u in self.by_op.items()}
            for function, (count, memory_mb) in self._cold.items():
                warm = self.lambda_ms.get(function)
                billed = sum(warm) / len(warm) if warm else self.cold_ms[function]
                out[f"lambda.{function}"].units["lambda_gb_seconds"] += count * cm.lambda_gb_seconds(billed, memory_mb)
        return out

    @property
    def units(self) -> dict[str, float]:
        """Billed units by price key, over every operation (cold starts settled)."""
        totals: defaultdict[str, float] = defaultdict(float)
        for usage in self.settled().values():
            for key, n in usage.units.items():
                totals[key] += n
        return totals

    def add(self, op: str, units: dict[str, float], calls: int = 1) -> None:
        """Bill something no SDK call shows (an HTTP API request, a delivery EventBridge makes)."""
        with self._lock:
            usage = self.by_op[op]
            usage.calls += calls
            for key, n in units.items():
                usage.units[key] += n

    # ---- botocore hooks ----------------------------------------------------------------------------------------

    def _frames(self) -> list[_Invocation]:
        frames: list[_Invocation] | None = getattr(self._local, "frames", None)
        if frames is None:
            frames = self._local.frames = []
        return frames

    def _open_calls(self) -> list[_Call]:
        calls: list[_Call] | None = getattr(self._local, "calls", None)
        if calls is None:
            calls = self._local.calls = []
        return calls

    def _on_call(self, model: Any, params: dict[str, Any], context: dict[str, Any] | None = None, **_: Any) -> None:
        cpu_start = time.thread_time()  # from here on it is emulation (and this hook): not the handler's time
        service = model.service_model.service_name
        op = model.name
        frames = self._frames()
        region = (context or {}).get("client_region") or _region()
        call = _Call(service, op, params, region, frames[-1] if frames else None, cpu_start)
        with self._lock:
            self.calls[f"{service}.{op}"] += 1
        if service == "dynamodb":
            call.before = _sizes(call.region, _write_keys(call.region, op, params))
            if op in ("Query", "Scan"):
                self._local.reading = []
        if context is not None:
            context["cdp_cost_call"] = call
        self._open_calls().append(call)

    def _on_result(self, context: dict[str, Any] | None = None, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        self._finish(context, parsed or {})

    def _on_error(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        self._finish(context, {})

    def _finish(self, context: dict[str, Any] | None, parsed: dict[str, Any]) -> None:
        call: _Call | None = (context or {}).pop("cdp_cost_call", None)
        if call is None:
            return
        open_calls = self._open_calls()
        if call in open_calls:
            open_calls.remove(call)
        reads: list[int] | None = None
        if call.service == "dynamodb" and call.op in ("Query", "Scan"):
            reads = getattr(self._local, "reading", None)
            self._local.reading = None
        self._bill(call, parsed, reads)
        if call.frame is not None:
            # everything from the parameters to the parsed answer is emulation; the model's latency replaces it
            call.frame.aws_cpu_s += time.thread_time() - call.cpu_start
            call.frame.latency_ms += cm.call_latency_ms(call.service, call.op) + call.callee_ms

    def _end_invocation(self, frame: _Invocation) -> None:
        cpu_ms = max(0.0, (time.thread_time() - frame.cpu_start - frame.aws_cpu_s) * 1000)
        billed = cm.lambda_billed_ms(cm.lambda_modelled_ms(cpu_ms, frame.latency_ms, frame.memory_mb))
        open_calls = self._open_calls()
        caller = open_calls[-1] if open_calls else None
        if caller and (caller.service, caller.op) == ("lambda", "Invoke") and _synchronous(caller.params):
            caller.callee_ms += billed  # the caller waits for it
        with self._lock:
            usage = self.by_op[f"lambda.{frame.function}"]
            usage.calls += 1
            usage.units["lambda_requests"] += 1
            if frame.function in self._warmed:
                self.lambda_ms[frame.function].append(billed)
                self.lambda_cpu_ms[frame.function].append(cpu_ms)
                self.lambda_latency_ms[frame.function].append(frame.latency_ms)
                usage.units["lambda_gb_seconds"] += cm.lambda_gb_seconds(billed, frame.memory_mb)
            else:
                self._warmed.add(frame.function)
                self.cold_ms[frame.function] = billed
                count, _ = self._cold.get(frame.function, (0, frame.memory_mb))
                self._cold[frame.function] = (count + 1, frame.memory_mb)
            logs = self.by_op[f"logs.{frame.function}"]
            logs.units["cloudwatch_logs_gb"] += cm.log_units_gb(
                cm.LAMBDA_PLATFORM_LOG_EVENTS, cm.LAMBDA_PLATFORM_LOG_BYTES
            )

    def _add_log(self, text: str) -> None:
        frames = self._frames()
        if not frames:
            return  # nothing the deployed functions would log
        lines = max(1, text.count("\n"))
        size = len(text.encode("utf-8")) - text.count("\n")
        with self._lock:
            self.by_op[f"logs.{frames[-1].function}"].units["cloudwatch_logs_gb"] += cm.log_units_gb(lines, size)

    # ---- billing -----------------------------------------------------------------------------------------------

    def _bill(self, call: _Call, parsed: dict[str, Any], reads: list[int] | None) -> None:
        name = f"{call.service}.{call.op}"
        if call.frame is None and (call.service, call.op) in _LOCAL_ONLY:
            with self._lock:
                self.unbilled[name] += 1
            return
        extra: Extra = []
        if call.service == "dynamodb":
            units = _dynamodb_units(call, parsed, reads)
            by_item = _wru_by_item(call)
            with self._lock:
                self.wru_by_item.update(by_item)
        elif call.service == "sqs":
            units, extra = _sqs_units(call.op, call.params, parsed)
            if call.op == "ReceiveMessage" and not parsed.get("Messages") and call.frame is None:
                with self._lock:
                    self.unbilled[f"{name}:empty"] += 1
                return
        elif call.service == "lambda" and call.op == "Invoke":
            units = {} if self._lambda_measured else {"lambda_requests": 1.0}
        else:
            known, units = _other_units(call.service, call.op, call.params)
            if not known:
                with self._lock:
                    self.unpriced[name] += 1
        with self._lock:
            usage = self.by_op[name]
            usage.calls += 1
            for key, n in units.items():
                usage.units[key] += n
            for op, calls, more in extra:
                self.by_op[op].calls += calls
                for key, n in more.items():
                    self.by_op[op].units[key] += n


class _LogSink:
    """A text stream that counts what would reach CloudWatch Logs (one log event per line)."""

    def __init__(self, counter: ApiCallCounter) -> None:
        self._counter = counter

    def write(self, text: str) -> int:
        self._counter._add_log(text)
        return len(text)

    def flush(self) -> None:
        return None


def _synchronous(params: dict[str, Any]) -> bool:
    return params.get("InvocationType", "RequestResponse") == "RequestResponse"


# ---- DynamoDB ----------------------------------------------------------------------------------------------------


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)][region]


def _key_id(key: dict[str, Any]) -> str:
    return repr(sorted((name, repr(value)) for name, value in key.items()))


def _stored_item(region: str, table_name: str, key: dict[str, Any]) -> Any:
    """The item as moto stores it (None if absent or not readable): no API call, nothing counted."""
    try:
        backend = _backend(region)
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        return table.get_item(hash_key, range_key)
    except Exception:  # a missing table or a malformed key: the call itself will fail and bill nothing
        return None


def _stored_size(region: str, table_name: str, key: dict[str, Any]) -> int:
    item = _stored_item(region, table_name, key)
    return cm.item_size(item.attrs) if item is not None else 0


def _key_of_item(region: str, table_name: str, item: dict[str, Any]) -> dict[str, Any]:
    try:
        table = _backend(region).get_table(table_name)
    except Exception:
        return {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _write_keys(region: str, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a write touches."""
    if op in ("PutItem", "UpdateItem", "DeleteItem"):
        table = params.get("TableName", "")
        key = params.get("Key") if op != "PutItem" else _key_of_item(region, table, params.get("Item", {}))
        return [(table, key or {})]
    if op == "BatchWriteItem":
        out = []
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    out.append((table, _key_of_item(region, table, request["PutRequest"].get("Item", {}))))
                elif "DeleteRequest" in request:
                    out.append((table, request["DeleteRequest"].get("Key", {})))
        return out
    if op == "TransactWriteItems":
        out = []
        for entry in params.get("TransactItems", []):
            kind, body = next(iter(entry.items()))
            table = body.get("TableName", "")
            key = _key_of_item(region, table, body.get("Item", {})) if kind == "Put" else body.get("Key", {})
            out.append((table, key))
        return out
    return []


def _sizes(region: str, keys: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], int]:
    return {(table, _key_id(key)): _stored_size(region, table, key) for table, key in keys}


def _item_kind(table: str, key: dict[str, Any]) -> str:
    """What kind of item a key names: the sort key's prefix (`T#...` -> `T`, `PROFILE`), else the table."""
    sort = [v for name, v in key.items() if name == "sk"]
    if not sort or "S" not in sort[0]:
        return table
    return str(sort[0]["S"]).split("#", 1)[0]


_INDEX_KEYS = {table.local_name: [index.partition_key for index in table.indexes] for table in topology.TABLES}


def _index_writes(call: _Call, table: str, key: dict[str, Any]) -> int:
    """Write units of a table write in its keys-only indexes: one per index a new item enters (its index item is the
    keys, well under 1 KB; a transaction does not double it). An item rewritten with the same index key writes no
    index item (the indexed attributes of our items never change); deletions out of an index are not counted."""
    names = _INDEX_KEYS.get(table)
    if not names or call.before.get((table, _key_id(key)), 0):
        return 0
    item = _stored_item(call.region, table, key)
    return sum(1 for name in names if item is not None and name in item.attrs)


def _wru_by_item(call: _Call) -> Counter[str]:
    out: Counter[str] = Counter()
    if call.op not in _ITEM_WRITES and call.op not in ("BatchWriteItem", "TransactWriteItems"):
        return out
    factor = 2 if call.op == "TransactWriteItems" else 1
    for table, key in _write_keys(call.region, call.op, call.params):
        before = call.before.get((table, _key_id(key)), 0)
        out[_item_kind(table, key)] += factor * cm.write_units(before, _stored_size(call.region, table, key))
        indexed = _index_writes(call, table, key)
        if indexed:
            out["index"] += indexed
    return out


def _dynamodb_units(call: _Call, parsed: dict[str, Any], reads: list[int] | None) -> dict[str, float]:
    op, params, region = call.op, call.params, call.region
    if op in _ITEM_WRITES or op in ("BatchWriteItem", "TransactWriteItems"):
        factor = 2 if op == "TransactWriteItems" else 1
        wru = 0
        for table, key in _write_keys(region, op, params):
            before = call.before.get((table, _key_id(key)), 0)
            # a write bills the larger of the item before and after (a failed condition: the item as it stays)
            wru += factor * cm.write_units(before, _stored_size(region, table, key)) + _index_writes(call, table, key)
        return {"dynamodb_wru": float(wru)}
    if op == "GetItem":
        size = _stored_size(region, params.get("TableName", ""), params.get("Key", {}))
        return {"dynamodb_rru": cm.read_units(size, bool(params.get("ConsistentRead")))}
    if op == "BatchGetItem":
        rru = 0.0
        for table, request in params.get("RequestItems", {}).items():
            consistent = bool(request.get("ConsistentRead"))
            for key in request.get("Keys", []):
                rru += cm.read_units(_stored_size(region, table, key), consistent)
        return {"dynamodb_rru": rru}
    if op == "TransactGetItems":
        rru = 0.0
        for entry in params.get("TransactItems", []):
            get = entry.get("Get", {})
            rru += 2 * cm.read_units(_stored_size(region, get.get("TableName", ""), get.get("Key", {})), True)
        return {"dynamodb_rru": rru}
    if op in ("Query", "Scan"):
        if reads is None:  # the filter hook saw nothing: size what came back (a lower bound)
            reads = [cm.item_size(item) for item in parsed.get("Items", [])]
        return {"dynamodb_rru": cm.read_units(sum(reads), bool(params.get("ConsistentRead")))}
    return {}  # control plane (CreateTable, DescribeTable, ...): not metered per request


def _record_query_reads(local: threading.local) -> Callable[[], None]:
    """Wrap moto's filter-expression factory so that, while a Query or Scan is open on this thread, every item it
    reads (after the index projection, before the filter and the projection expression) is sized."""
    import moto.dynamodb.models as models

    original = models.get_filter_expression

    class _Sizing:
        def __init__(self, inner: Any, sizes: list[int]) -> None:
            self._inner, self._sizes = inner, sizes

        def expr(self, item: Any) -> bool:
            self._sizes.append(cm.item_size(item.attrs))
            return True if self._inner is None else bool(self._inner.expr(item))

    def sizing(expr: Any, names: Any, values: Any) -> Any:
        inner = original(expr, names, values)
        sizes: list[int] | None = getattr(local, "reading", None)
        return inner if sizes is None else _Sizing(inner, sizes)

    models.get_filter_expression = sizing

    def _restore_filter() -> None:
        if models.get_filter_expression is sizing:
            models.get_filter_expression = original

    return _restore_filter


# ---- SQS, EventBridge, S3, others --------------------------------------------------------------------------------


Extra = list[tuple[str, int, dict[str, float]]]  # billed on other operations: (operation, calls, units)


def _sqs_units(op: str, params: dict[str, Any], parsed: dict[str, Any]) -> tuple[dict[str, float], Extra]:
    if op == "SendMessage":
        size = cm.sqs_message_size(params.get("MessageBody"), params.get("MessageAttributes"))
        return {"sqs_requests": float(cm.sqs_requests(size))}, []
    if op == "SendMessageBatch":
        entries = params.get("Entries", [])
        size = sum(cm.sqs_message_size(e.get("MessageBody"), e.get("MessageAttributes")) for e in entries)
        return {"sqs_requests": float(cm.sqs_requests(size))}, []
    if op == "ReceiveMessage":
        messages = parsed.get("Messages", [])
        sizes = [cm.sqs_message_size(m.get("Body"), m.get("MessageAttributes")) for m in messages]
        # A first receipt stands for the SendMessage EventBridge made to deliver the event to the queue (the queue
        # owner pays it); moto makes that delivery internally, where no SDK call shows it.
        first = [
            size
            for message, size in zip(messages, sizes, strict=True)
            if message.get("Attributes", {}).get("ApproximateReceiveCount", "1") == "1"
        ]
        extra: Extra = []
        if first:
            sends = float(sum(cm.sqs_requests(size) for size in first))
            extra.append(("sqs.EventBridgeSendMessage", len(first), {"sqs_requests": sends}))
        return {"sqs_requests": float(cm.sqs_requests(sum(sizes)))}, extra
    return {"sqs_requests": 1.0}, []


def _other_units(service: str, op: str, params: dict[str, Any]) -> tuple[bool, dict[str, float]]:
    if service == "events":
        if op == "PutEvents":
            return True, {"eventbridge_events": float(cm.eventbridge_units(params.get("Entries", [])))}
        return True, {}
    if service == "s3":
        if op in _S3_FREE:
            return True, {}
        return True, {"s3_put" if op.startswith(_S3_PUT_TIER) else "s3_get": 1.0}
    if service == "secretsmanager":
        return True, {"secretsmanager_calls": 1.0}
    return False, {}


def cost_usd(units: dict[str, float], gb_seconds: float = 0.0) -> dict[str, float]:
    """Dollars per price key (gb_seconds: Lambda GB-s billed on top of `units`)."""
    out = cm.cost_usd(units)
    out["lambda_gb_seconds"] += gb_seconds * LAMBDA_GB_SECOND
    return out
