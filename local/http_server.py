"""`cdp serve`: the local HTTP API on 127.0.0.1, forwarding every request to `LocalRuntime.http`.

After each accepted (2xx) request the bus queues are drained, so a posted event has become a profile by the time
the client reads the response ("sync"); "background" answers first and lets a drainer thread catch up.

Besides the API Gateway routes, the local server answers a few routes of its own under `/_local/` that stand in for
what a deployment does with IAM rather than HTTP (they take the administrator key): `cdp import run` uploads a
store file to `POST /_local/imports` (the file lands under imports/incoming/{brand}/{kind}/ and the import state
machine starts, as the S3 -> EventBridge rule would start it), then polls `GET /_local/imports/{import id}` and reads
`GET /_local/imports/{import id}/rejects`. Rows imported this way stay in the served runtime. `cdp export warehouse`
runs the warehouse export with `POST /_local/warehouse` and fetches its Parquet files from `GET
/_local/warehouse/files`.

While it serves, the demo brand's ad accounts are loopback fakes of Tencent Ads and Ocean Engine
(`cdp_local.fakes.ad_platforms`), named in the sources secret, so audience activations upload somewhere real.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs

from cdp import topology
from cdp_local.console_site import CONSOLE_PREFIX, console_request
from cdp_local.console_users import users_file_path
from cdp_local.fakes.ad_platforms import LocalAdPlatforms
from cdp_local.runtime import LocalRuntime

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DrainMode = Literal["sync", "background", "off"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
LOCAL_PREFIX = "/_local/"  # routes of the local server only (never on API Gateway)
TICK_SECONDS = 60.0
_BRAND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FILE_NAME = re.compile(r"[^/\\\x00-\x1f]{1,200}")
_IMPORT_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
LocalAnswer = tuple[int, dict[str, str], bytes]


class LocalApiServer:
    """A ThreadingHTTPServer in front of a running LocalRuntime. Use as a context manager or call start/stop."""

    def __init__(
        self,
        runtime: LocalRuntime,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        drain: DrainMode = "sync",
        ticks: bool = False,
        users_file: Path | None = None,
    ) -> None:
        self.runtime = runtime
        # the console's users (cdp_local.console_users): signed in here, managed by the operations function
        self.users_file = users_file or runtime.console_users_file or users_file_path(None)
        self.drain_mode = drain
        self.ticks = ticks  # fire the campaign schedule's tick every minute (`cdp serve`)
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self.ad_platforms = LocalAdPlatforms(runtime)  # the demo brand's ad accounts (activation), on the loopback

    @property
    def users_file(self) -> Path:
        return self._users_file

    @users_file.setter
    def users_file(self, path: Path) -> None:
        """The users the console signs in, which the settings API (the operations function) then manages too."""
        self._users_file = path
        self.runtime.use_console_users(path)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def after_accepted(self) -> None:
        if self.drain_mode == "sync":
            report = self.runtime.drain()
            log.info(
                "drained: %d processed, %d failed, %d dead-lettered",
                report.processed,
                report.failed,
                report.dead_lettered,
            )
        elif self.drain_mode == "background":
            self._pending.set()

    def local_request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[LocalAnswer, bool]:
        """A `/_local/` route: (answer, whether the queues should be drained before it is sent)."""
        raw_path, _, raw_query = path.partition("?")
        lowered = {k.lower(): v for k, v in headers.items()}
        bearer = lowered.get("authorization", "").removeprefix("Bearer ").strip()
        if self.runtime.admin_key not in (lowered.get("x-api-key"), bearer):
            message = "the local routes take the administrator key ($CDP_ADMIN_API_KEY, default local-admin-key)"
            return _json(401, {"error": "unauthorized", "message": message}), False
        with self.runtime.lock:  # like every API request: moto's backends are not thread-safe
            return self._local_route(method, raw_path, raw_query, body)

    def _local_route(self, method: str, raw_path: str, raw_query: str, body: bytes) -> tuple[LocalAnswer, bool]:
        parts = raw_path[len(LOCAL_PREFIX) :].strip("/").split("/")
        if parts == ["imports"] and method == "POST":
            return _start_import(self.runtime, parse_qs(raw_query), body), False
        if len(parts) in (2, 3) and parts[0] == "imports" and method == "GET" and _IMPORT_ID.fullmatch(parts[1]):
            if len(parts) == 3 and parts[2] == "rejects":
                return _import_rejects(self.runtime, parts[1]), False
            if len(parts) == 2:
                answer, status = _import_status(self.runtime, parts[1])
                # an ended import's events become profiles before the client hears it ended (sync drain)
                return answer, status in _TERMINAL
        if len(parts) == 2 and parts[0] == "schedules" and method == "POST":
            return _fire_schedule(self.runtime, parts[1], parse_qs(raw_query)), True
        if parts[0] == "warehouse" and (method, parts[1:]) in (("POST", []), ("GET", ["files"])):
            return _warehouse(self.runtime, method, parse_qs(raw_query)), False
        return _json(404, {"error": "not_found", "message": f"no local route {method} {raw_path}"}), False

    def _ticker(self) -> None:
        """What EventBridge Scheduler does on AWS for the campaign tick: fire it every minute at the wall clock."""
        while not self._stopping.wait(timeout=TICK_SECONDS):
            try:
                with self.runtime.lock:
                    self.runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name)
                self.after_accepted()
            except Exception:  # the ticker must outlive one bad tick; the failure is logged
                log.exception("campaign tick failed")

    def _drainer(self) -> None:
        while not self._stopping.is_set():
            if self._pending.wait(timeout=0.2):
                self._pending.clear()
                try:
                    self.runtime.drain()
                except Exception:  # the drainer must outlive one bad round; the failure is logged
                    log.exception("background drain failed")

    def start(self) -> LocalApiServer:
        self.ad_platforms.start()
        serve = threading.Thread(target=self._server.serve_forever, name="cdp-http", daemon=True)
        self._threads.append(serve)
        if self.ticks:
            self._threads.append(threading.Thread(target=self._ticker, name="cdp-campaign-tick", daemon=True))
        if self.drain_mode == "background":
            self._threads.append(threading.Thread(target=self._drainer, name="cdp-drainer", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        """Block in the calling thread (the CLI); the drainer, if any, runs beside it."""
        if self.drain_mode == "background":
            drainer = threading.Thread(target=self._drainer, name="cdp-drainer", daemon=True)
            self._threads.append(drainer)
            drainer.start()
        self._server.serve_forever()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.ad_platforms.stop()

    def __enter__(self) -> LocalApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _handler_class(server: LocalApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "cdp-local"

        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/" or self.path.startswith(("/?", CONSOLE_PREFIX)):
                status, headers, payload = console_request(self.command, self.path, body, server.users_file)
                drain = False
            elif self.path.startswith(LOCAL_PREFIX):
                (status, headers, payload), drain = server.local_request(
                    self.command, self.path, body, dict(self.headers.items())
                )
            else:
                status, headers, payload = server.runtime.http(
                    self.command, self.path, body, dict(self.headers.items()), source_ip=self.client_address[0]
                )
                drain = 200 <= status < 300
            if drain:
                server.after_accepted()
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward

        def __getattr__(self, name: str) -> object:
            # any other method (TRACE, QUERY, ...) is forwarded too: API Gateway answers it 404, never 501
            if name.startswith("do_"):
                return self._forward
            raise AttributeError(name)

        def log_message(self, format: str, *args: object) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


MAX_AFTER_S = 366 * 86_400


def _fire_schedule(runtime: LocalRuntime, name: str, query: dict[str, list[str]]) -> LocalAnswer:
    """POST /_local/schedules/{name}?at=ISO or ?after=SECONDS: fire a schedule as if it came due at `at`, or
    `after` seconds after the local clock's now (default: now). A later time moves the local clock there, e.g. to
    run next Monday's campaign occurrence today."""
    if name not in runtime.schedules:
        known = ", ".join(sorted(runtime.schedules))
        return _json(404, {"error": "not_found", "message": f"no schedule {name!r}; known: {known}"})
    raw, later = (query.get("at") or [""])[0], (query.get("after") or [""])[0]
    if raw and later:
        return _json(400, {"error": "invalid_request", "message": "give at or after, not both", "field": "after"})
    if later:
        if not later.isdigit() or int(later) > MAX_AFTER_S:
            message = f"after must be a whole number of seconds, at most {MAX_AFTER_S} (a year)"
            return _json(400, {"error": "invalid_request", "message": message, "field": "after"})
        at: datetime | None = runtime.clock() + timedelta(seconds=int(later))
    else:
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
        except ValueError:
            at = None
        if (raw and at is None) or (at is not None and at.tzinfo is None):
            message = "at must be an ISO 8601 time with an offset, e.g. 2026-12-07T10:00:00+08:00"
            return _json(400, {"error": "invalid_request", "message": message, "field": "at"})
    moment = at or runtime.clock()
    firing = runtime.fire_schedule(name, moment)
    return _json(200, {"schedule": name, "at": moment.isoformat(), "result": firing.result})


def _warehouse(runtime: LocalRuntime, method: str, query: dict[str, list[str]]) -> LocalAnswer:
    """POST /_local/warehouse?brand=&since=YYYY-MM-DD: run the warehouse export (as its nightly schedule does);
    GET /_local/warehouse/files: its tables' Parquet files as one zip (`cdp export warehouse`)."""
    from datetime import date

    from cdp_local.cli_export import run_export, warehouse_zip
    from cdp_local.runtime import FunctionInvocationError

    if method == "GET":
        return 200, {"content-type": "application/zip"}, warehouse_zip(runtime)
    brand = (query.get("brand") or [""])[0] or None
    raw = (query.get("since") or [""])[0]
    if brand is not None and not _BRAND.fullmatch(brand):
        return _json(400, {"error": "invalid_request", "message": "brand is not a brand id", "field": "brand"})
    try:
        since = date.fromisoformat(raw) if raw else None
    except ValueError:
        return _json(400, {"error": "invalid_request", "message": "since must be a date, YYYY-MM-DD", "field": "since"})
    try:
        return _json(200, run_export(runtime, brand, since))
    except FunctionInvocationError as exc:  # a failed run: what the schedule's failure queue would hold
        return _json(500, {"error": "export_failed", "message": f"{exc.error_type}: {exc.error_message}"})


def _json(status: int, body: Any) -> LocalAnswer:
    return status, {"content-type": "application/json"}, json.dumps(body, default=str).encode()


def _start_import(runtime: LocalRuntime, query: dict[str, list[str]], body: bytes) -> LocalAnswer:
    """Drop the uploaded file where S3 would receive it and start its execution: 202 with the import id."""
    from cdp.connectors.files import FileKind
    from cdp_local.cli_import import HISTORY, start_history_import, start_import, upload_bytes

    brand, kind, name = (query.get(k, [""])[0] for k in ("brand", "kind", "name"))
    if not _BRAND.fullmatch(brand):
        return _json(400, {"error": "invalid_request", "field": "brand", "message": f"not a brand id: {brand!r}"})
    kinds = [*(k.value for k in FileKind), HISTORY]
    if kind not in kinds:
        message = f"kind must be one of {', '.join(kinds)}"
        return _json(400, {"error": "invalid_request", "field": "kind", "message": message})
    if not _FILE_NAME.fullmatch(name) or name in {".", ".."}:
        return _json(400, {"error": "invalid_request", "field": "name", "message": "a file name without a path"})
    if kind == HISTORY:
        import_id, arn, key = start_history_import(runtime, body, brand, name)
    else:
        key = upload_bytes(runtime, body, brand, FileKind(kind), name)
        import_id, arn = start_import(runtime, key)
    return _json(202, {"import_id": import_id, "key": key, "execution_arn": arn})


def _execution_arns(runtime: LocalRuntime, import_id: str) -> list[str]:
    """The import id is the execution's name (see cli_import.start_import): of a file or a history import."""
    from cdp import topology

    machines = (topology.IMPORT_MACHINE.key, topology.HISTORY_IMPORT_MACHINE.key)
    arns = [runtime.state_machine_arns[m] for m in machines if m in runtime.state_machine_arns]
    return [f"{arn.replace(':stateMachine:', ':execution:')}:{import_id}" for arn in arns]


def _import_status(runtime: LocalRuntime, import_id: str) -> tuple[LocalAnswer, str]:
    """The execution's status, the progress record and, once it ended, the report or the error."""
    from cdp_local.cli_import import progress_store

    sfn = runtime.client("stepfunctions")
    described: dict[str, Any] | None = None
    for arn in _execution_arns(runtime, import_id):
        try:
            described = dict(sfn.describe_execution(executionArn=arn))
            break
        except sfn.exceptions.ExecutionDoesNotExist:
            continue
    if described is None:
        return _json(404, {"error": "not_found", "message": f"no import {import_id}"}), ""
    status = str(described["status"])
    progress = progress_store(runtime).get(import_id)
    answer: dict[str, Any] = {
        "import_id": import_id,
        "status": status,
        "progress": progress.model_dump(mode="json") if progress else None,
        "report": json.loads(described.get("output") or "null") if status == "SUCCEEDED" else None,
        "error": None,
    }
    if status in _TERMINAL and status != "SUCCEEDED":
        answer["error"] = (progress.error if progress else None) or str(
            described.get("cause") or described.get("error")
        )
    return _json(200, answer), status


def _import_rejects(runtime: LocalRuntime, import_id: str) -> LocalAnswer:
    """The rejects file of an import (CSV, UTF-8 with a BOM), as the bucket holds it."""
    from cdp import topology
    from cdp.imports import keys

    s3 = runtime.client("s3")
    try:
        obj = s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=keys.rejects_key(import_id))
    except s3.exceptions.NoSuchKey:
        return _json(404, {"error": "not_found", "message": f"no rejects file for import {import_id} (yet)"})
    return 200, {"content-type": "text/csv; charset=utf-8"}, obj["Body"].read()


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, drain: DrainMode = "sync") -> None:
    """Start the runtime and serve until interrupted (what `cdp serve` runs)."""
    with LocalRuntime() as runtime:
        server = LocalApiServer(runtime, host, port, drain)
        print(f"cdp local API on {server.url}  (POST /v1/events with x-api-key: {runtime.api_key})")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve()
