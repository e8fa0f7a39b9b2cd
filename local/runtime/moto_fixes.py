"""Small, scoped corrections of moto where it departs from AWS in ways our handlers notice."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.events.utils import EventTemplateParser
from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
    ToleratedFailureCountDecl,
    ToleratedFailurePercentageDecl,
)
from moto.stepfunctions.parser.asl.component.state.state_props import StateProps
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

from cdp_local.runtime.moto_guard import Reliance, check

# AWS delivers the whole envelope to an SQS target; moto 5.2.5's default template drops "account", which the
# Powertools EventBridgeModel requires.
_FULL_ENVELOPE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", "account": "<account>",'
    ' "time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)


# If moto starts sending the whole envelope itself (or renames these), the fix must be re-checked or dropped.
ENVELOPE_RELIES_ON = (
    Reliance("moto.events.utils:EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE", "bed7e495ddc0029c"),
    Reliance("moto.events.utils:EventTemplateParser.DEFAULT_EVENT_INPUT_PATHS_MAP", "ae9f6a0cbf358451"),
    Reliance("moto.events.utils:EventTemplateParser.parse", "26da46228edb6d83"),
)


@contextmanager
def eventbridge_full_envelope() -> Iterator[None]:
    check("eventbridge_full_envelope", ENVELOPE_RELIES_ON)
    with mock.patch.object(EventTemplateParser, "DEFAULT_EVENT_INPUT_TEMPLATE", _FULL_ENVELOPE):
        yield


# moto 5.2.5 runs a Distributed Map's items but never applies ToleratedFailureCount/-Percentage (unimplemented there): a
# failed item is only counted on the map run record and leaves null in the results, so the Map state succeeds. AWS
# fails the Map Run with States.ExceedToleratedFailureThreshold when the failed and timed-out items exceed a threshold
# the state sets (with neither set: any failure), and the Map state's Retry/Catch take it from there. This applies
# that rule once moto's map run has ended (AWS stops the remaining child executions at once; here they still run and
# their results are dropped). moto fills an unset threshold with 0, so which ones the state sets is noted at parse.
# (moto's ASL grammar also takes ToleratedFailurePercentage only as a decimal: `0.0` parses, an integer is an error.)
TOLERANCE_RELIES_ON = (
    # wrapped: it pushes the items' outputs (null for a failed item) and returns
    Reliance(
        "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component"
        ":DistributedIterationComponent._map_run",
        "73694f06f47330eb",
    ),
    # read, not replaced: turns our FailureEventException into MapRunFailed (with its error and cause) and re-raises
    Reliance(
        "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component"
        ":DistributedIterationComponent._eval_body",
        "8c2221beab74fe69",
    ),
    # read, not replaced: where the failed and timed-out items are counted on the map run record
    Reliance(
        "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor"
        ".distributed_item_processor_worker:DistributedItemProcessorWorker._eval_job",
        "425808c57a48108c",
    ),
    # wrapped: it builds the iteration component and fills unset thresholds with 0
    Reliance(
        "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map:StateMap.from_state_props",
        "2a68ff43d10bb58b",
    ),
)
EXCEED_TOLERATED = StatesErrorNameType.StatesExceedToleratedFailureThreshold


def tolerance_exceeded(failed: int, total: int, count: int | None, percentage: float | None) -> bool:
    """AWS's rule: a Map Run fails when its failed items exceed a tolerance the state sets (None: not set); a state
    that sets neither tolerates no failure."""
    if count is None and percentage is None:
        return failed > 0
    return (count is not None and failed > count) or (
        percentage is not None and total > 0 and 100 * failed / total > percentage
    )


@contextmanager
def distributed_map_tolerance() -> Iterator[None]:
    check("distributed_map_tolerance", TOLERANCE_RELIES_ON)
    from_state_props = StateMap.from_state_props
    map_run = DistributedIterationComponent._map_run

    def _from_state_props(self: StateMap, state_props: StateProps) -> None:
        from_state_props(self, state_props)
        self.iteration_component.tolerance_set = (  # type: ignore[attr-defined]
            state_props.get(ToleratedFailureCountDecl) is not None,
            state_props.get(ToleratedFailurePercentageDecl) is not None,
        )

    def _map_run(self: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
        map_run(self, env, eval_input)
        record = eval_input.map_run_record
        failed = record.item_counter.failed.get() + record.item_counter.timed_out.get()
        total = record.item_counter.total.get()
        count_set, percentage_set = getattr(self, "tolerance_set", (True, True))
        count = record.tolerated_failure_count if count_set else None
        percentage = record.tolerated_failure_percentage if percentage_set else None
        if not tolerance_exceeded(failed, total, count, percentage):
            return
        env.stack.pop()  # the items' outputs: a failed Map Run has no result
        raise FailureEventException(
            FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=EXCEED_TOLERATED),
                event_type=HistoryEventType.MapRunFailed,
                # one key, as moto itself builds them (its TypedDict declares every key required)
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    mapRunFailedEventDetails=MapRunFailedEventDetails(
                        error=EXCEED_TOLERATED.to_name(),
                        cause=f"{failed} of {total} items failed (tolerated: count {count}, percentage {percentage})",
                    )
                ),
            )
        )

    # moto warns on every parse that tolerances "have no effect"; with this fix they do, so the warning would mislead
    parser_log = logging.getLogger("moto.stepfunctions.parser.asl.parse.preprocessor")
    level = parser_log.level
    parser_log.setLevel(logging.ERROR)
    try:
        with (
            mock.patch.object(StateMap, "from_state_props", _from_state_props),
            mock.patch.object(DistributedIterationComponent, "_map_run", _map_run),
        ):
            yield
    finally:
        parser_log.setLevel(level)
