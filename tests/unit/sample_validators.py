"""Validators of the samples under events/ owned by the models, channels and campaigns contexts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EXTRA_VALIDATORS: dict[str, Callable[[Any], None]] = {}


def _campaign_input(data: Any) -> None:
    from pydantic import TypeAdapter

    from cdp.campaigns.models import CampaignCommand, SelectCommand

    command = TypeAdapter(CampaignCommand).validate_python({"action": "select", **data})
    assert isinstance(command, SelectCommand)


EXTRA_VALIDATORS["sfn/campaign_input"] = _campaign_input


def _send_input(data: Any) -> None:
    from cdp.channels.models import SendBatchRequest

    SendBatchRequest.model_validate(data)


EXTRA_VALIDATORS["sfn/send_input"] = _send_input


def _train_input(data: Any) -> None:
    from cdp.models.training import TRAIN_TASK_ADAPTER, TrainRequest

    assert isinstance(TRAIN_TASK_ADAPTER.validate_python(data), TrainRequest)


def _score_input(data: Any) -> None:
    from cdp.models.scoring import ScoreRunRequest

    ScoreRunRequest.model_validate(data)


EXTRA_VALIDATORS["sfn/train_input"] = _train_input
EXTRA_VALIDATORS["sfn/score_input"] = _score_input
