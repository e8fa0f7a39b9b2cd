"""`LocalRuntime`: the whole stack on moto, in-process, built from `cdp.topology` and the shared ASL files."""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from moto import mock_aws

from cdp import settings, topology
from cdp.org import load_org
from cdp.topology import BusRuleSpec, QueueSpec, ScheduleSpec, StateMachineSpec, TableSpec
from cdp_local.runtime import apigw
from cdp_local.runtime.apigw import HttpResponse
from cdp_local.runtime.clock import LocalClock, local_clock
from cdp_local.runtime.environment import (
    ACCOUNT_ID,
    LOCAL_EMAIL_FROM,
    REGION,
    api_keys_document,
    configured_admin_key,
    configured_api_key,
    configured_write_key,
    local_environment,
    local_sources,
    patched_environ,
    state_machine_arn,
)
from cdp_local.runtime.lambdas import Handler, HandlerRouter, function_arn
from cdp_local.runtime.moto_atomic import atomic_dynamodb
from cdp_local.runtime.moto_fixes import distributed_map_tolerance, eventbridge_full_envelope
from cdp_local.runtime.moto_hotspots import moto_hotspots
from cdp_local.runtime.moto_speedups import (
    cached_jsonpath,
    fast_dynamodb_responses,
    fast_transactions,
    partition_queries,
)
from cdp_local.runtime.ses_events import ses_delivery_events
from cdp_local.runtime.waits import WaitStates, execution_status, wait_states_on

log = logging.getLogger(__name__)

STATEMACHINES_DIR = Path(__file__).resolve().parents[2] / "infra" / "statemachines"
ROLE_NAME = "cdp-local-role"
_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@functools.cache
def _session() -> boto3.session.Session:
    """One session per process for the runtime's own clients: its loader caches the service models, which makes a
    second runtime start in a fraction of the time (moto's stubber routes every client, whichever session)."""
    return boto3.session.Session()


def create_table(ddb: Any, table: TableSpec) -> None:
    """A table exactly as the stack declares it (keys and TTL from `cdp.topology`); tests use it too."""
    keys = [(table.partition_key, "HASH"), (table.sort_key, "RANGE")]
    indexes = [
        {
            "IndexName": index.name,
            "KeySchema": [{"AttributeName": index.partition_key, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
        for index in table.indexes
    ]
    attributes = [name for name, _ in keys] + [index.partition_key for index in table.indexes]
    ddb.create_table(
        TableName=table.local_name,
        KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in keys],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in dict.fromkeys(attributes)],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    if table.ttl_attribute:
        ddb.update_time_to_live(
            TableName=table.local_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


class FunctionInvocationError(Exception):
    """A routed function raised: carries the Lambda error payload (errorType, errorMessage)."""

    def __init__(self, function_key: str, payload: Mapping[str, Any]) -> None:
        self.function_key = function_key
        self.error_type = str(payload.get("errorType", "Unknown"))
        self.error_message = str(payload.get("errorMessage", ""))
        self.payload = dict(payload)
        super().__init__(f"{function_key} failed: {self.error_type}: {self.error_message}")


@dataclass
class QueueCounts:
    received: int = 0
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0


@dataclass
class DrainReport:
    """What one `drain` did. `failed` counts failed deliveries (a message retried 3 times counts 3)."""

    rounds: int = 0
    invocations: int = 0
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    quiet: bool = False  # every queue was empty at the end (False: max_rounds ran out first)
    by_queue: dict[str, QueueCounts] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleFiring:
    schedule: str
    execution_arn: str | None = None  # for a state-machine target
    result: Any = None  # for a function target


class LocalRuntime:
    """Context manager: moto started, every topology resource created, Lambda/SQS/HTTP/schedules routed in-process.

    Only one runtime may be open at a time in a process (moto's backends and the Lambda patch are process-wide).
    """

    _active_lock = threading.Lock()
    _active: LocalRuntime | None = None

    def __init__(
        self,
        handler_overrides: Mapping[str, Handler] | None = None,
        *,
        api_key: str | None = None,
        log_level: str = "WARNING",
        env_overrides: Mapping[str, str] | None = None,
        statemachines_dir: Path = STATEMACHINES_DIR,
        state_machines: Collection[str] | None = None,
        api_keys_file: str | None = None,
        console_users_file: Path | None = None,
    ) -> None:
        """`state_machines`: the keys to create (None: all); parsing ASL is the slowest part of a start.
        `api_keys_file`: more API keys (the ApiKeys secret's JSON document); default $CDP_API_KEYS_FILE.
        `console_users_file`: the console's users the operations function manages (default: a file of the runtime's
        own, in a temporary directory; `LocalApiServer` names the file it signs users in from)."""
        self.router = HandlerRouter(handler_overrides)
        self.api_key = api_key or configured_api_key()
        self.admin_key = configured_admin_key()  # the profile API's every-scope key (see seeded_api_keys)
        self.write_key = configured_write_key()  # Segment-compatible write key (HTTP Basic user)
        self.api_keys_file = api_keys_file
        self.environment = local_environment(log_level, env_overrides)
        self.statemachines_dir = statemachines_dir
        self.wanted_machines = None if state_machines is None else frozenset(state_machines)
        self.lock = threading.RLock()  # serialises HTTP requests and drains (moto backends are not thread-safe)
        self.queue_urls: dict[str, str] = {}
        self.queue_arns: dict[str, str] = {}
        self.state_machine_arns: dict[str, str] = {}
        self.skipped_machines: dict[str, str] = {}
        self.schedules: dict[str, ScheduleSpec] = {s.local_name: s for s in topology.SCHEDULES}
        self._clients: dict[str, Any] = {}
        self._stack: list[Any] = []
        self.wait_states = WaitStates()  # Step Functions Wait states: their seconds, or until `end_wait_state`
        self.clock = LocalClock()  # what handlers read as now: moved ahead by schedules fired at a later time
        self.console_users_file = console_users_file

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        with LocalRuntime._active_lock:
            if LocalRuntime._active is not None:
                raise RuntimeError("a LocalRuntime is already running in this process")
            LocalRuntime._active = self
        try:
            if self.console_users_file is None:  # a runtime of its own never writes a developer's users file
                users_dir = tempfile.TemporaryDirectory(prefix="cdp-console-users-")
                self._enter(users_dir)
                self.console_users_file = Path(users_dir.name) / "console-users.json"
            self.environment[topology.CONSOLE_USERS_FILE_ENV] = str(self.console_users_file)
            # env first: moto, boto3 and the handlers' cached settings must all see the local values
            self._enter(patched_environ(self.environment))
            settings.get_settings.cache_clear()
            load_org.cache_clear()  # the environment may name another org config ($CDP_ORG_CONFIG)
            # the product's logger may have been made before the env was set (a CLI imports the domain early)
            from cdp.observability import logger

            logger.setLevel(self.environment.get("POWERTOOLS_LOG_LEVEL", "WARNING"))
            self._enter(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
            self._enter(fast_transactions())
            self._enter(fast_dynamodb_responses())
            self._enter(cached_jsonpath())
            self._enter(partition_queries())
            self._enter(moto_hotspots())
            # DynamoDB applies each request atomically; moto's backend is not thread-safe, and the state machines'
            # Map iterations run in threads (two send batches carving one budget plan would lose an update)
            self._enter(atomic_dynamodb())
            self._enter(self.router.patched_moto())
            self._enter(eventbridge_full_envelope())
            self._enter(distributed_map_tolerance())  # a failed shard fails a Distributed Map, as on AWS
            self._enter(wait_states_on(self.wait_states))
            self._enter(local_clock(self.clock))
            self._enter(ses_delivery_events(REGION))  # SES's events for sends naming a configuration set, as on AWS
            # Powertools warns on every handler without custom metrics; with metrics disabled locally it is noise
            warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
            self._provision()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            while self._stack:
                self._stack.pop().__exit__(None, None, None)
        finally:
            self._clients.clear()
            settings.get_settings.cache_clear()
            load_org.cache_clear()
            with LocalRuntime._active_lock:
                LocalRuntime._active = None

    def use_console_users(self, path: Path) -> None:
        """From now on the operations function manages the console users of `path` (the file the local server signs
        them in from). Called before serving: it sets the process's variable once, not per request."""
        with self.lock:
            self.console_users_file = path
            self.environment[topology.CONSOLE_USERS_FILE_ENV] = str(path)
            if LocalRuntime._active is self:
                os.environ[topology.CONSOLE_USERS_FILE_ENV] = str(path)
                settings.get_settings.cache_clear()

    def _enter(self, ctx: Any) -> None:
        ctx.__enter__()
        self._stack.append(ctx)

    def client(self, service: str) -> Any:
        """A boto3 client bound to this runtime's moto (created after the mock started, cached)."""
        if service not in self._clients:
            self._clients[service] = _session().client(service, region_name=REGION)
        return self._clients[service]

    # ---- provisioning --------------------------------------------------------------------------------------

    def _provision(self) -> None:
        role_arn = self._create_role()
        self._create_tables()
        self.client("s3").create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        self.client("events").create_event_bus(Name=topology.EVENT_BUS_LOCAL_NAME)
        self._create_queues()
        self._create_rules()
        self._create_secrets()
        self._create_email_identity()
        self._create_functions(role_arn)
        self._create_state_machines(role_arn)
        self._create_schedules(role_arn)

    def _create_role(self) -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Service": ["lambda.amazonaws.com", "states.amazonaws.com", "scheduler.amazonaws.com"]
                    },
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = self.client("iam").create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
        return str(role["Role"]["Arn"])

    def _create_tables(self) -> None:
        for table in topology.TABLES:
            create_table(self.client("dynamodb"), table)

    def _create_queues(self) -> None:
        sqs = self.client("sqs")
        for queue in topology.QUEUES:
            dlq_url = sqs.create_queue(QueueName=topology.dlq_name(queue))["QueueUrl"]
            dlq_arn = self._queue_arn(dlq_url)
            redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
            url = sqs.create_queue(
                QueueName=queue.local_name,
                Attributes={
                    "VisibilityTimeout": str(queue.visibility_timeout_s),
                    "RedrivePolicy": json.dumps(redrive),
                },
            )["QueueUrl"]
            self.queue_urls[queue.local_name] = url
            self.queue_urls[topology.dlq_name(queue)] = dlq_url
            if queue.dlq_env and self.environment.get(queue.dlq_env) != dlq_url:
                raise RuntimeError(f"{queue.dlq_env} is {self.environment.get(queue.dlq_env)}, moto made {dlq_url}")
            self.queue_arns[queue.local_name] = self._queue_arn(url)
            self.queue_arns[topology.dlq_name(queue)] = dlq_arn

    def _queue_arn(self, url: str) -> str:
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def _create_rules(self) -> None:
        events = self.client("events")
        for rule in topology.BUS_RULES:
            bus = topology.EVENT_BUS_LOCAL_NAME if rule.bus == "platform" else "default"
            events.put_rule(
                Name=rule.local_name, EventBusName=bus, EventPattern=json.dumps(rule.pattern), State="ENABLED"
            )
            events.put_targets(
                Rule=rule.local_name,
                EventBusName=bus,
                Targets=[{"Id": rule.queue.logical_id, "Arn": self.queue_arns[rule.queue.local_name]}],
            )

    def _create_secrets(self) -> None:
        keys = api_keys_document(self.api_key, self.admin_key, self.api_keys_file)
        self.client("secretsmanager").create_secret(
            Name=topology.API_KEYS_SECRET_LOCAL_NAME, SecretString=json.dumps(keys)
        )
        self.client("secretsmanager").create_secret(
            Name=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(local_sources(self.write_key))
        )

    def _create_email_identity(self) -> None:
        # SES v2 for the send path; v1 too, because moto's v2 send_email checks the v1 verified list
        self.client("sesv2").create_email_identity(EmailIdentity=LOCAL_EMAIL_FROM)
        self.client("ses").verify_email_identity(EmailAddress=LOCAL_EMAIL_FROM)

    def _create_functions(self, role_arn: str) -> None:
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("README.txt", "routed in-process by cdp_local.runtime; this archive is never run")
        lam = self.client("lambda")
        for fn in topology.FUNCTIONS:
            lam.create_function(
                FunctionName=fn.local_name,
                Runtime="python3.12",
                Role=role_arn,
                Handler=fn.handler,
                Code={"ZipFile": code.getvalue()},
                MemorySize=fn.memory_mb,
                Timeout=fn.timeout_s,
                Environment={"Variables": {k: self.environment[k] for k in fn.env if k in self.environment}},
            )

    def definition_substitutions(self, machine: StateMachineSpec) -> dict[str, str]:
        """Exactly what the CDK construct passes as `definition_substitutions`: function ARNs by placeholder."""
        return {placeholder: function_arn(fn) for placeholder, fn in machine.functions.items()}

    def _create_state_machines(self, role_arn: str) -> None:
        sfn = self.client("stepfunctions")
        for machine in topology.STATE_MACHINES:
            if self.wanted_machines is not None and machine.key not in self.wanted_machines:
                self.skipped_machines[machine.key] = "not requested (state_machines=...)"
                continue
            path = self.statemachines_dir / machine.asl_file
            if not path.is_file():
                self.skipped_machines[machine.key] = f"{path} does not exist"
                log.warning("state machine %s skipped: %s not found", machine.key, path)
                continue
            definition = path.read_text(encoding="utf-8")
            for placeholder, value in self.definition_substitutions(machine).items():
                definition = definition.replace("${" + placeholder + "}", value)
            if "${" in definition:
                log.warning("state machine %s keeps unsubstituted placeholders", machine.key)
            arn = sfn.create_state_machine(name=machine.local_name, definition=definition, roleArn=role_arn)[
                "stateMachineArn"
            ]
            if arn != state_machine_arn(machine):  # the functions' environment names it (environment.py)
                raise RuntimeError(f"moto named state machine {machine.key} {arn}, not {state_machine_arn(machine)}")
            self.state_machine_arns[machine.key] = str(arn)

    def _create_schedules(self, role_arn: str) -> None:
        # Stored so the stack is complete and inspectable; moto's Scheduler never fires: see `fire_schedule`.
        scheduler = self.client("scheduler")
        for schedule in topology.SCHEDULES:
            target_arn = self._schedule_target_arn(schedule)
            if target_arn is None:
                continue
            scheduler.create_schedule(
                Name=schedule.local_name,
                ScheduleExpression=schedule.expression,
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": target_arn, "RoleArn": role_arn, "Input": schedule.input},
            )

    def _schedule_target_arn(self, schedule: ScheduleSpec) -> str | None:
        if schedule.target_machine is not None:
            return self.state_machine_arns.get(schedule.target_machine.key)
        if schedule.target_function is not None:
            return function_arn(schedule.target_function)
        return None

    # ---- Lambda --------------------------------------------------------------------------------------------

    def override(self, function_key: str, handler: Handler | None) -> None:
        """Route a function to another callable (tests), or back to its real handler with None."""
        self.router.override(function_key, handler)

    def invoke(self, function_key: str, event: Any) -> Any:
        """Invoke a function through the Lambda API (so the same path as every other caller); raise on error."""
        spec = topology.FUNCTIONS_BY_KEY[function_key]
        response = self.client("lambda").invoke(
            FunctionName=spec.local_name, Payload=json.dumps(event, default=str).encode("utf-8")
        )
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise FunctionInvocationError(function_key, payload if isinstance(payload, dict) else {})
        return payload

    # ---- bus -> SQS -> Lambda ------------------------------------------------------------------------------

    def drain(self, max_rounds: int = 50) -> DrainReport:
        """Deliver every rule's queue to its consumer until all queues stay empty.

        A round receives each queue empty (consumers may publish to later queues in the same round). Failed
        messages (batchItemFailures, or the whole batch when the handler raised) become visible again at the end
        of the round; moto moves one to its DLQ on the receive after maxReceiveCount, as SQS does.
        """
        with self.lock:
            report = DrainReport(by_queue={r.queue.local_name: QueueCounts() for r in topology.BUS_RULES})
            if not any(self._visible(rule.queue.local_name) for rule in topology.BUS_RULES):
                # nothing to receive, so nothing to deliver and nothing moved to a DLQ: the drain `cdp serve` runs
                # after every API request costs a look per queue when (as after a read) nothing was published
                report.rounds, report.quiet = 1, True
                return report
            dlq_before = {q.local_name: self._depth(topology.dlq_name(q)) for q in topology.QUEUES}
            for _ in range(max_rounds):
                report.rounds += 1
                to_retry: list[tuple[str, str]] = []
                received = 0
                for rule in topology.BUS_RULES:
                    received += self._drain_queue(rule, report, to_retry)
                sqs = self.client("sqs")
                for url, receipt in to_retry:
                    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
                if received == 0:
                    report.quiet = True
                    break
            for queue in topology.QUEUES:
                moved = self._depth(topology.dlq_name(queue)) - dlq_before[queue.local_name]
                report.dead_lettered += moved
                if queue.local_name in report.by_queue:
                    report.by_queue[queue.local_name].dead_lettered += moved
            return report

    def _drain_queue(self, rule: BusRuleSpec, report: DrainReport, to_retry: list[tuple[str, str]]) -> int:
        sqs = self.client("sqs")
        url = self.queue_urls[rule.queue.local_name]
        counts = report.by_queue[rule.queue.local_name]
        received = 0
        for _ in range(10_000):  # a consumer feeding its own queue must not spin forever
            messages = self._receive_batch(url, rule.batch_size)
            if not messages:
                break
            received += len(messages)
            counts.received += len(messages)
            failed = self._deliver(rule, messages)
            report.invocations += 1
            done = [m for m in messages if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                chunk = done[start : start + 10]
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            to_retry.extend((url, m["ReceiptHandle"]) for m in messages if m["MessageId"] in failed)
            counts.processed += len(done)
            counts.failed += len(messages) - len(done)
            report.processed += len(done)
            report.failed += len(messages) - len(done)
        return received

    def _receive_batch(self, url: str, batch_size: int) -> list[dict[str, Any]]:
        """What the SQS event source mapping hands one invocation: up to `batch_size` messages, 10 per receive,
        until the queue has no more (the local stand-in for its batching window)."""
        sqs = self.client("sqs")
        batch: list[dict[str, Any]] = []
        while len(batch) < batch_size:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(batch_size - len(batch), 10),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            batch.extend(messages)
        return batch

    def sqs_event(self, queue: QueueSpec, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda's SQS event source mapping hands the consumer."""
        arn = self.queue_arns[queue.local_name]
        return {"Records": [_sqs_record(m, arn) for m in messages]}

    def _deliver(self, rule: BusRuleSpec, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the consumer; return the ids of the messages that failed."""
        all_ids = {m["MessageId"] for m in messages}
        try:
            result = self.invoke(rule.consumer.key, self.sqs_event(rule.queue, messages))
        except FunctionInvocationError as exc:
            log.warning("%s failed a batch of %d: %s", rule.consumer.key, len(messages), exc)
            return all_ids
        if not isinstance(result, dict) or not result.get("batchItemFailures"):
            return set()
        failed = {str(f.get("itemIdentifier")) for f in result["batchItemFailures"]}
        # Lambda treats an unknown or empty identifier as a failure of the whole batch
        return failed if failed <= all_ids else all_ids

    def _visible(self, queue_name: str) -> int:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[queue_name], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    def _depth(self, queue_name: str) -> int:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[queue_name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dlq_messages(self, queue: QueueSpec | str) -> list[dict[str, Any]]:
        """Every message in a queue's DLQ (left in place: received with visibility 0)."""
        name = topology.dlq_name(queue) if isinstance(queue, QueueSpec) else queue
        if name in {q.local_name for q in topology.QUEUES}:
            name = f"{name}-dlq"
        url = self.queue_urls[name]
        seen: dict[str, dict[str, Any]] = {}
        with self.lock:
            for _ in range(1000):
                batch = (
                    self.client("sqs")
                    .receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=10,
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],  # the reason it was parked with
                        VisibilityTimeout=30,
                    )
                    .get("Messages", [])
                )
                if not batch:
                    break
                for message in batch:
                    seen.setdefault(message["MessageId"], message)
            for message in seen.values():
                self.client("sqs").change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        return list(seen.values())

    def queue_depth(self, queue: QueueSpec | str) -> int:
        return self._depth(queue.local_name if isinstance(queue, QueueSpec) else queue)

    # ---- Step Functions ------------------------------------------------------------------------------------

    def start_execution(self, machine_key: str, input: Any = None) -> str:
        if machine_key not in self.state_machine_arns:
            reason = self.skipped_machines.get(machine_key, "not in cdp.topology.STATE_MACHINES")
            raise KeyError(f"state machine {machine_key!r} is not available: {reason}")
        payload = input if isinstance(input, str) else json.dumps({} if input is None else input, default=str)
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.state_machine_arns[machine_key],
            name=f"{machine_key}-{uuid.uuid4().hex}",  # moto reuses "None" without a name
            input=payload,
        )
        return str(response["executionArn"])

    def wait_execution(self, execution_arn: str, timeout: float = 60.0, poll: float = 0.05) -> tuple[str, Any]:
        """Wait until the execution ends: (status, parsed output); for a failure the output is {error, cause}.

        The status is checked every `poll` seconds in moto's backend (what DescribeExecution answers, without a
        request per check); the outcome is then read through the API."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.execution_status(execution_arn)
            if status in _TERMINAL:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still {status} after {timeout}s")
            time.sleep(poll)
        described = self.client("stepfunctions").describe_execution(executionArn=execution_arn)
        status = str(described["status"])
        if status == "SUCCEEDED":
            return status, json.loads(described.get("output") or "null")
        return status, {"error": described.get("error"), "cause": described.get("cause")}

    def execution_status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED: DescribeExecution's status, read from moto's backend."""
        return execution_status(execution_arn)

    def wait_state_entered(self, execution_arn: str, timeout: float = 60.0) -> bool:
        """Block until the execution sits in a Wait state (True), or has ended or `timeout` ran out (False)."""
        return self.wait_states.wait_entered(
            execution_arn, lambda: self.execution_status(execution_arn) in _TERMINAL, timeout
        )

    def end_wait_state(self, execution_arn: str) -> bool:
        """End the execution's current Wait state now, as if its seconds were up (True: it was waiting). Local
        time is compressed: a caller that has made happen what the wait was for need not sit out the rest."""
        return self.wait_states.end(execution_arn)

    # ---- schedules -----------------------------------------------------------------------------------------

    def fire_schedule(self, local_name: str, at: datetime | None = None) -> ScheduleFiring:
        """Do what EventBridge Scheduler would do when the schedule comes due at `at` (default: now); moto's
        never fires. The scheduled time goes where the input names it, as Scheduler's context attribute does."""
        schedule = self.schedules[local_name]
        moment = (at or self.clock()).astimezone(UTC)
        self.clock.advance_to(moment)  # what runs from now on is stamped with the simulated time, never earlier
        payload = json.loads(schedule.input.replace(topology.SCHEDULED_TIME, moment.isoformat().replace("+00:00", "Z")))
        self.wait_states.end_due(moment.timestamp())  # Wait states that are up by then end, as they would have
        if schedule.target_machine is not None:
            return ScheduleFiring(local_name, execution_arn=self.start_execution(schedule.target_machine.key, payload))
        if schedule.target_function is not None:
            return ScheduleFiring(local_name, result=self.invoke(schedule.target_function.key, payload))
        raise ValueError(f"schedule {local_name} has no target")

    # ---- HTTP API ------------------------------------------------------------------------------------------

    def http(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        """One request through the emulated HTTP API: route, build the 2.0 event, invoke, map the result."""
        raw_path, _, raw_query = path.partition("?")
        matched = apigw.match_route(method, raw_path)
        if matched is None:
            return apigw.error_response(404, "Not Found")
        route, params = matched
        event = apigw.build_event(route, params, method, raw_path, raw_query, body, headers or {}, source_ip)
        with self.lock:
            try:
                payload = self.invoke(route.function.key, event)
            except FunctionInvocationError as exc:
                log.error("HTTP %s %s: %s", method, raw_path, exc)
                return apigw.error_response(500, "Internal Server Error")
        return apigw.to_response(payload)


def _sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", ACCOUNT_ID),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
