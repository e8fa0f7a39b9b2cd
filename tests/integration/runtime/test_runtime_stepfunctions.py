"""State machines from ASL files with ${Placeholder} ARNs, executing routed Lambda tasks; schedules fired by hand."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
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
    # Given a schedule targeting a function with a fixed input
    schedule = next(s for s in topology.SCHEDULES if s.target_function is topology.TAG_SWEEP)
    assert schedule.target_function is not None
    handler = Recorder(reply={"swept": 0})
    runtime.override(schedule.target_function.key, handler)
    # When fired / Then the function ran with the schedule's input
    fired = runtime.fire_schedule(schedule.local_name)
    assert fired.result == {"swept": 0}
    assert handler.events == [json.loads(schedule.input)]


def test_a_schedule_gets_the_time_it_fires_at_where_its_input_names_it(runtime: LocalRuntime) -> None:
    # Given the campaign tick, whose input carries Scheduler's <aws.scheduler.scheduled-time>
    tick = topology.CAMPAIGN_TICK
    assert tick.target_function is not None and topology.SCHEDULED_TIME in tick.input
    handler = Recorder(reply={"started": []})
    runtime.override(tick.target_function.key, handler)
    # When the local clock fires it next Monday / Then the function is told that time, as Scheduler would
    runtime.fire_schedule(tick.local_name, datetime(2026, 12, 7, 10, 0, tzinfo=timezone(timedelta(hours=8))))
    assert handler.events == [{"now": "2026-12-07T02:00:00Z"}]


def test_starting_a_machine_that_was_not_created_names_the_reason(runtime: LocalRuntime) -> None:
    # Given a runtime started without state machines / When one is started / Then a KeyError says why
    with pytest.raises(KeyError, match="not requested"):
        runtime.start_execution(MACHINE.key, {})


# A machine that waits the seconds its input names, then passes its input on.
WAIT_ASL = {
    "StartAt": "Wait",
    "States": {
        "Wait": {"Type": "Wait", "SecondsPath": "$.seconds", "Next": "Done"},
        "Done": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture
def wait_runtime(asl_dir: Path) -> Iterator[LocalRuntime]:
    (asl_dir / MACHINE.asl_file).write_text(json.dumps(WAIT_ASL))
    with LocalRuntime(statemachines_dir=asl_dir, state_machines=[MACHINE.key]) as rt:
        yield rt


def _history(rt: LocalRuntime, arn: str) -> list[str]:
    events = rt.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    return [event["type"] for event in events]


def test_a_wait_state_ended_by_the_runtime_exits_as_if_its_seconds_were_up(wait_runtime: LocalRuntime) -> None:
    # Given an execution in a Wait state of an hour
    arn = wait_runtime.start_execution(MACHINE.key, {"seconds": 3600})
    assert wait_runtime.wait_state_entered(arn, timeout=20)
    assert wait_runtime.execution_status(arn) == "RUNNING"
    # When the runtime ends the wait (what it waited for has happened)
    assert wait_runtime.end_wait_state(arn)
    # Then the execution goes on at once and its history shows the Wait state entered and exited
    assert wait_runtime.wait_execution(arn, timeout=20) == ("SUCCEEDED", {"seconds": 3600})
    assert _history(wait_runtime, arn) == [
        "ExecutionStarted",
        "WaitStateEntered",
        "WaitStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    # and there is no wait left to end
    assert not wait_runtime.end_wait_state(arn)


class _Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_wait_state_nobody_ends_waits_its_seconds_on_the_runtimes_clock(wait_runtime: LocalRuntime) -> None:
    # Given Wait states that wait on a clock the test moves, and an execution in a Wait state of a minute
    clock = _Clock()
    wait_runtime.wait_states.clock = clock
    arn = wait_runtime.start_execution(MACHINE.key, {"seconds": 60})
    assert wait_runtime.wait_state_entered(arn, timeout=20)
    # Then while the clock stands still it keeps waiting
    assert wait_runtime.execution_status(arn) == "RUNNING" and wait_runtime.wait_states.waiting(arn)
    # When its minute has passed on that clock / Then it goes on and ends
    clock.now += 60
    assert wait_runtime.wait_execution(arn, timeout=20) == ("SUCCEEDED", {"seconds": 60})
    assert not wait_runtime.wait_states.waiting(arn)


def test_an_execution_that_ends_without_waiting_is_not_awaited_forever(wait_runtime: LocalRuntime) -> None:
    # Given an execution whose Wait state waits 0 seconds (it never waits)
    arn = wait_runtime.start_execution(MACHINE.key, {"seconds": 0})
    # When a caller waits for it to enter a Wait state / Then it hears that the execution ended instead
    assert not wait_runtime.wait_state_entered(arn, timeout=20)
    assert wait_runtime.execution_status(arn) == "SUCCEEDED"


def test_a_stopped_execution_leaves_its_wait_state(wait_runtime: LocalRuntime) -> None:
    # Given an execution in a Wait state of an hour
    arn = wait_runtime.start_execution(MACHINE.key, {"seconds": 3600})
    assert wait_runtime.wait_state_entered(arn, timeout=20)
    # When it is stopped / Then it is aborted and no longer waits
    wait_runtime.client("stepfunctions").stop_execution(executionArn=arn)
    assert wait_runtime.wait_execution(arn, timeout=20)[0] == "ABORTED"
    deadline = time.monotonic() + 5
    while wait_runtime.wait_states.waiting(arn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not wait_runtime.wait_states.waiting(arn)
