"""Lambda invocations are routed in-process; exceptions come back as FunctionError payloads."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp import topology
from cdp.topology import FunctionSpec
from cdp_local.runtime import FunctionInvocationError, LocalRuntime
from cdp_local.runtime.lambdas import HandlerRouter
from tests.integration.runtime.recording import Recorder


def test_invoke_api_runs_the_handler_in_process_with_a_lambda_context(runtime: LocalRuntime) -> None:
    # Given the scoring function routed to a recording handler
    handler = Recorder(reply=lambda event: {"scored": event["shard"] * 2})
    runtime.override(topology.SCORING.key, handler)
    # When it is invoked through the Lambda API
    response = runtime.client("lambda").invoke(
        FunctionName=topology.SCORING.local_name, Payload=json.dumps({"shard": 21}).encode()
    )
    # Then the handler's result is the payload, with no FunctionError
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"scored": 42}
    # And the handler got the event and a Lambda context filled from topology
    event, context = handler.calls[0]
    assert event == {"shard": 21}
    assert isinstance(context, LambdaContext)
    assert context.function_name == topology.SCORING.local_name
    assert context.memory_limit_in_mb == topology.SCORING.memory_mb
    assert context.invoked_function_arn.endswith(f":function:{topology.SCORING.local_name}")
    assert context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= topology.SCORING.timeout_s * 1000


def test_handler_exception_becomes_function_error(runtime: LocalRuntime) -> None:
    # Given a handler that raises
    def boom(event: object, context: object) -> None:
        raise ValueError("shard out of range")

    runtime.override(topology.SCORING.key, boom)
    # When invoked through the Lambda API
    response = runtime.client("lambda").invoke(FunctionName=topology.SCORING.local_name, Payload=b"{}")
    # Then the response carries FunctionError and the error payload
    assert response.get("FunctionError")
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "shard out of range"
    # And runtime.invoke raises a typed error with the same facts
    with pytest.raises(FunctionInvocationError) as raised:
        runtime.invoke(topology.SCORING.key, {})
    assert (raised.value.function_key, raised.value.error_type) == (topology.SCORING.key, "ValueError")


def test_direct_invoke_returns_the_payload(runtime: LocalRuntime) -> None:
    # Given a routed function / When invoked directly / Then the payload comes back as Python data
    runtime.override(topology.TAG_SWEEP.key, Recorder(reply={"swept": 3}))
    assert runtime.invoke(topology.TAG_SWEEP.key, {"at": "now"}) == {"swept": 3}


def test_missing_handler_module_is_an_import_error_not_a_crash() -> None:
    # Given a function whose handler module does not exist (yet)
    spec = FunctionSpec("nope", "NopeFunction", "functions.does_not_exist.handler.lambda_handler", env=())
    # When it is called / Then it fails like Lambda's Runtime.ImportModuleError
    payload, errored = HandlerRouter().call(spec, {})
    assert errored
    assert json.loads(payload)["errorType"] == "Runtime.ImportModuleError"


def test_override_of_unknown_function_is_refused(runtime: LocalRuntime) -> None:
    with pytest.raises(KeyError, match="unknown function"):
        runtime.override("no_such_function", Recorder())
