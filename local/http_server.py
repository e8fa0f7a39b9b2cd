"""`cdp serve`: the local HTTP API on 127.0.0.1, forwarding every request to `LocalRuntime.http`.

After each accepted (2xx) request the bus queues are drained, so a posted event has become a profile by the time
the client reads the response ("sync"); "background" answers first and lets a drainer thread catch up.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

from cdp_local.runtime import LocalRuntime

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DrainMode = Literal["sync", "background", "off"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


class LocalApiServer:
    """A ThreadingHTTPServer in front of a running LocalRuntime. Use as a context manager or call start/stop."""

    def __init__(
        self, runtime: LocalRuntime, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, drain: DrainMode = "sync"
    ) -> None:
        self.runtime = runtime
        self.drain_mode = drain
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True

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

    def _drainer(self) -> None:
        while not self._stopping.is_set():
            if self._pending.wait(timeout=0.2):
                self._pending.clear()
                try:
                    self.runtime.drain()
                except Exception:  # the drainer must outlive one bad round; the failure is logged
                    log.exception("background drain failed")

    def start(self) -> LocalApiServer:
        serve = threading.Thread(target=self._server.serve_forever, name="cdp-http", daemon=True)
        self._threads.append(serve)
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
            status, headers, payload = server.runtime.http(
                self.command, self.path, body, dict(self.headers.items()), source_ip=self.client_address[0]
            )
            if 200 <= status < 300:
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
