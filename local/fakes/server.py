"""What every loopback fake shares: a ThreadingHTTPServer on 127.0.0.1 (a free port by default) that hands each
request to `answer(method, path, headers, body)`, scripted failures, and an in-process transport for unit tests."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from cdp.shared.http import HttpAnswer, HttpTransport, HttpUnreachable

MAX_BODY = 1024 * 1024


@dataclass
class Scripted:
    """One scripted answer: an HTTP status and body, or a delay (a client timeout), for the next `times` calls."""

    status: int = 500
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    delay_s: float = 0.0
    times: int = 1
    then_handle: bool = False  # handle the request for real after the delay (a slow but successful answer)


class LoopbackFake(ABC):
    """Subclasses implement `answer`; `fail_next` queues scripted answers served before it."""

    name = "fake"

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._script: list[Scripted] = []

    # ---- what a subclass provides ------------------------------------------------------------------------------

    @abstractmethod
    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        """The fake's answer to one request (headers' names in lower case)."""

    # ---- scripted failures ------------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        body: bytes = b"",
        times: int = 1,
        delay_s: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._script.append(Scripted(status, body, headers, delay_s, times))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Answer late (but for real): a client with a shorter timeout sees no answer though the work was done."""
        with self._lock:
            self._script.append(Scripted(delay_s=seconds, times=times, then_handle=True))

    def _scripted(self) -> Scripted | None:
        with self._lock:
            if not self._script:
                return None
            head = self._script[0]
            head.times -= 1
            if head.times <= 0:
                self._script.pop(0)
            return head

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        scripted = self._scripted()
        if scripted is not None:
            if scripted.delay_s:
                time.sleep(scripted.delay_s)
            if not scripted.then_handle:
                return HttpAnswer(scripted.status, scripted.body, dict(scripted.headers or {}))
        return self.answer(method, path, {k.lower(): v for k, v in headers.items()}, body)

    # ---- serving ----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def transport(self) -> HttpTransport:
        """Calls this fake in-process (no socket): unit tests of an adapter. URLs must point at `self.url`."""

        def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != self.url:
                raise HttpUnreachable(url, "not this fake", sent=False)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            return self.handle(method, path, headers, body)

        return send

    def start(self) -> Self:
        # a short poll: stop() returns within it (each test that starts a fake pays it once)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which an unstarted fake never ran
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _handler(fake: LoopbackFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = min(int(self.headers.get("content-length") or 0), MAX_BODY)
            raw = self.rfile.read(length) if length else b""
            answer = fake.handle(self.command, self.path, dict(self.headers.items()), raw)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout it was told to have)
                pass

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
