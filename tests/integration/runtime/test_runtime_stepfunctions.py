"""State machines from ASL files with ${Placeholder} ARNs, executing routed Lambda tasks; schedules fired by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdp import topology
from cdp_local.runtime import LocalRuntime
from tests.integration.runtime.recording import Recorder

MACHINE = topology.SCORE_MACHINE
PLACEHOLDER = next(iter(MACHINE.functions))  # the ${...} name the score ASL uses for its function
FUNCTION = MACHINE.functions[PLACEHOLDER]

# A tiny score machine: one lambda:invoke task with a Catch on the handler's error type.
ASL = {
    "StartAt": "Score",
    "States": {
        "Score": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${" + PLACEHOLDER + "}", "Payload.$": "$"},
            "OutputPath": "$.Payload",
            "Catch": [{"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Rejected"}],
            "End": True,
        },
        "Rejected": {"Type": "Pass", "Parameters": {"rejected": True, "type.$": "$.error.Error"}, "End": True},
    },
}


@pytest.fixture
def sfn_runtime(asl_dir: Path) -> Iterator[LocalRuntime]:
    (asl_dir / MACHINE.asl_file).write_text(json.dumps(ASL))
    with LocalRuntime(statemachines_dir=asl_dir) as rt:
        yield rt


def test_execution_invokes_the_routed_lambda_and_succeeds(sfn_runtime: LocalRuntime) -> None:
    # Given the machine's function answers with a score
    handler = Recorder(reply=lambda event: {"shard": event["shard"], "scored": 10})
    sfn_runtime.override(FUNCTION.key, handler)
    # When an execution runs
    arn = sfn_runtime.start_execution(MACHINE.key, {"shard": 3})
    status, output = sfn_runtime.wait_execution(arn, timeout=20)
    # Then it succeeded with the function's output, and the function saw the state input
    assert (status, output) == ("SUCCEEDED", {"shard": 3, "scored": 10})
    assert handler.events == [{"shard": 3}]


def test_handler_error_type_drives_the_asl_catch(sfn_runtime: LocalRuntime) -> None:
    # Given the function raises ValueError
    def boom(event: Any, context: Any) -> None:
        raise ValueError("bad shard")

    sfn_runtime.override(FUNCTION.key, boom)
    # When an execution runs / Then the Catch on ValueError took the Rejected branch
    status, output = sfn_runtime.wait_execution(sfn_runtime.start_execution(MACHINE.key, {"shard": 1}), timeout=20)
    assert (status, output) == ("SUCCEEDED", {"rejected": True, "type": "ValueError"})


def test_uncaught_error_fails_the_execution_with_error_and_cause(sfn_runtime: LocalRuntime) -> None:
    # Given the function raises an error no Catch names
    def boom(event: Any, context: Any) -> None:
        raise KeyError("shard")

    sfn_runtime.override(FUNCTION.key, boom)
    # When an execution runs / Then it fails with the error type, and executions get unique names
    first = sfn_runtime.start_execution(MACHINE.key, {})
    second = sfn_runtime.start_execution(MACHINE.key, {})
    assert first != second
    status, output = sfn_runtime.wait_execution(first, timeout=20)
    assert status == "FAILED"
    assert output["error"] == "KeyError"


def test_firing_a_schedule_starts_its_machine(sfn_runtime: LocalRuntime) -> None:
    # Given the schedule that targets the score machine
    schedule = next(s for s in topology.SCHEDULES if s.target_machine == MACHINE)
    sfn_runtime.override(FUNCTION.key, Recorder(reply={"ok": True}))
    # When it is fired / Then an execution of its machine ran with the schedule's input
    fired = sfn_runtime.fire_schedule(schedule.local_name)
    assert fired.execution_arn is not None
    assert sfn_runtime.wait_execution(fired.execution_arn, timeout=20) == ("SUCCEEDED", {"ok": True})


def test_firing_a_function_schedule_invokes_it(runtime: LocalRuntime) -> None:
    # Given a schedule targeting a function
    schedule = next(s for s in topology.SCHEDULES if s.target_function is not None)
    assert schedule.target_function is not None
    handler = Recorder(reply={"swept": 0})
    runtime.override(schedule.target_function.key, handler)
    # When fired / Then the function ran with the schedule's input
    fired = runtime.fire_schedule(schedule.local_name)
    assert fired.result == {"swept": 0}
    assert handler.events == [json.loads(schedule.input)]


def test_starting_a_machine_that_was_not_created_names_the_reason(runtime: LocalRuntime) -> None:
    # Given a runtime started without state machines / When one is started / Then a KeyError says why
    with pytest.raises(KeyError, match="not requested"):
        runtime.start_execution(MACHINE.key, {})
