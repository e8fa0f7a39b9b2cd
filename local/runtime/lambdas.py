"""Lambda routed in-process: moto's container invoke is replaced by importing and calling the real handler.

Every invoke path in moto (the Invoke API, Step Functions `lambda:invoke` tasks, event source mappings) ends in
`LambdaFunction._invoke_lambda(self, event) -> (payload_json, errored, logs)`, so patching that one method routes all
of them. An exception comes back as a FunctionError payload with errorType/errorMessage, as real Lambda does, so ASL
Retry/Catch on error names works.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from unittest import mock

from aws_lambda_powertools.utilities.typing import LambdaContext
from moto.awslambda.models import LambdaFunction

from cdp import topology
from cdp.topology import FunctionSpec
from cdp_local.runtime.environment import ACCOUNT_ID, REGION

Handler = Callable[[Any, Any], Any]


class LocalLambdaContext(LambdaContext):
    """A real Powertools LambdaContext, filled the way the Lambda runtime fills it, with a live deadline."""

    def __init__(self, spec: FunctionSpec, request_id: str | None = None) -> None:
        self._function_name = spec.local_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = function_arn(spec)
        self._memory_limit_in_mb = spec.memory_mb
        self._aws_request_id = request_id or str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{spec.local_name}"
        self._log_stream_name = f"local/[$LATEST]{uuid.uuid4().hex}"
        self._tenant_id = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_arn(spec: FunctionSpec) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.local_name}"


class HandlerImportError(Exception):
    """The handler module or attribute does not exist (yet): reported like Lambda's Runtime.ImportModuleError."""


def error_payload(exc: BaseException) -> dict[str, Any]:
    error_type = "Runtime.ImportModuleError" if isinstance(exc, HandlerImportError) else type(exc).__name__
    return {
        "errorType": error_type,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc)[-8:],
    }


class HandlerRouter:
    """Resolves a function to its handler (an override, else the dotted path in FunctionSpec) and calls it."""

    def __init__(self, overrides: Mapping[str, Handler] | None = None) -> None:
        self._overrides: dict[str, Handler] = dict(overrides or {})
        self._imported: dict[str, Handler] = {}
        self._import_lock = threading.RLock()
        self._by_name = {f.local_name: f for f in topology.FUNCTIONS}

    def override(self, function_key: str, handler: Handler | None) -> None:
        """Route `function_key` to `handler` (None restores the real one)."""
        if function_key not in topology.FUNCTIONS_BY_KEY:
            raise KeyError(f"unknown function {function_key!r}; known: {sorted(topology.FUNCTIONS_BY_KEY)}")
        if handler is None:
            self._overrides.pop(function_key, None)
        else:
            self._overrides[function_key] = handler

    def spec_for_name(self, function_name: str) -> FunctionSpec | None:
        return self._by_name.get(function_name)

    def resolve(self, spec: FunctionSpec) -> Handler:
        if spec.key in self._overrides:
            return self._overrides[spec.key]
        with self._import_lock:  # one import per module, even when Map tasks arrive on several threads
            if spec.handler not in self._imported:
                module_path, _, attr = spec.handler.rpartition(".")
                # A fresh module per runtime, like a cold start: module-level caches (clients, settings, secrets)
                # of an earlier runtime in this process must not leak in.
                sys.modules.pop(module_path, None)
                try:
                    module = importlib.import_module(module_path)
                except ModuleNotFoundError as exc:
                    raise HandlerImportError(f"Unable to import module '{module_path}': {exc}") from exc
                handler = getattr(module, attr, None)
                if not callable(handler):
                    raise HandlerImportError(f"Handler '{attr}' missing on module '{module_path}'")
                self._imported[spec.handler] = handler
            return self._imported[spec.handler]

    def call(self, spec: FunctionSpec, event: Any) -> tuple[str, bool]:
        """Run the handler; return (payload JSON, errored)."""
        try:
            result = self.resolve(spec)(event, LocalLambdaContext(spec))
            return json.dumps(result, default=str), False
        except Exception as exc:  # every failure must come back as a FunctionError, like the Lambda runtime does
            return json.dumps(error_payload(exc)), True
        finally:
            _discard_metrics()

    @contextmanager
    def patched_moto(self) -> Iterator[None]:
        """Route moto's Lambda invocations to `call` while the context is open."""
        router = self

        def _invoke_lambda(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            spec = router.spec_for_name(fn.function_name)
            if spec is None:
                return json.dumps(error_payload(LookupError(f"{fn.function_name} is not in cdp.topology"))), True, ""
            if isinstance(event, str | bytes):
                event = json.loads(event) if event else {}
            payload, errored = router.call(spec, {} if event is None else event)
            return payload, errored, ""

        with mock.patch.object(LambdaFunction, "_invoke_lambda", _invoke_lambda):
            yield


def _discard_metrics() -> None:
    """On Lambda, `log_metrics` flushes (and so empties) the metric set after every invocation. Locally metrics are
    disabled, which skips the flush, so the set would grow and Powertools prints it every 100 values: empty it."""
    from cdp.observability import metrics

    metrics.clear_metrics()
