"""Runs on the campaign state machine: the run id is the execution's name, so its ARN follows from the machine's."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.campaigns.catalog import CampaignRunner
from cdp.errors import StoreError
from cdp.shared.aws import client as default_client

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class StepFunctionsRunner(CampaignRunner):
    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self._machine = state_machine_arn
        self._sfn: SFNClient = client or default_client("stepfunctions")

    def execution_arn(self, run_id: str) -> str:
        return f"{self._machine.replace(':stateMachine:', ':execution:', 1)}:{run_id}"

    def start(self, run_id: str, request: dict[str, Any]) -> None:
        try:
            self._sfn.start_execution(stateMachineArn=self._machine, name=run_id, input=json.dumps(request))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return  # started already (a second tick or a retried request): the run is the same
            raise StoreError(f"starting run {run_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"starting run {run_id} failed: {exc}") from exc

    def stop(self, run_id: str, cause: str) -> None:
        try:
            self._sfn.stop_execution(executionArn=self.execution_arn(run_id), cause=cause[:32_000])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "ExecutionNotRunning"):
                return
            raise StoreError(f"stopping run {run_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"stopping run {run_id} failed: {exc}") from exc

    def status(self, run_id: str) -> str | None:
        try:
            described = self._sfn.describe_execution(executionArn=self.execution_arn(run_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise StoreError(f"reading run {run_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"reading run {run_id} failed: {exc}") from exc
        return str(described["status"])
