"""Validators of the samples under events/ owned by the models, channels and campaigns contexts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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


# ---- channel connectors: each sample is mapped by its connector's pure `map`, and every event it yields must be a
# valid canonical event (a sample a connector would reject is a broken contract, except the deliberately bad ones)


def _mapped_by(connector_name: str, key: str | None = None, **headers: str) -> Callable[[Any], None]:
    def check(data: Any) -> None:
        import json
        from datetime import UTC, datetime

        from cdp.connectors.base import Binding, InboundRequest
        from cdp.connectors.registry import connector_for
        from cdp.ingest.events import parse_event

        call = data.get("type", "batch") if isinstance(data, dict) and "batch" not in data else "batch"
        connector = connector_for(connector_name, {"call": call})
        assert connector is not None, connector_name
        body = json.dumps(data).encode()
        now = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
        request = InboundRequest(connector_name, "POST", body, now, "sample", key=key, headers=headers)
        mapped = connector.map(request, Binding(brand_id="demo-brand", label="sample"))
        assert mapped.rejected == [], mapped.rejected
        assert mapped.items or mapped.reply is not None, "the sample maps to nothing"
        for item in mapped.items:
            parse_event(item)

    return check


for _name in ("identify", "track_order_completed", "page", "batch", "rudderstack_track"):
    EXTRA_VALIDATORS[f"segment/{_name}"] = _mapped_by("segment")
EXTRA_VALIDATORS["wechat/miniprogram_events"] = _mapped_by("wechat_mp", "wx-local-mp")


def _mini_program_push(data: Any) -> None:
    """A mini-program's message push in JSON (its XML twin is read by the connector's unit tests)."""
    import json
    from datetime import UTC, datetime

    from cdp.connectors.base import Binding, InboundRequest
    from cdp.connectors.wechat import OfficialAccountConnector
    from cdp.ingest.events import parse_event

    now = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
    request = InboundRequest("wechat_oa", "POST", json.dumps(data).encode(), now, "sample", key="wx-local-mp")
    mapped = OfficialAccountConnector().map(request, Binding("demo-brand", "sample", channel="mini_program"))
    assert mapped.rejected == [] and mapped.items, mapped.rejected
    for item in mapped.items:
        assert parse_event(item).source == "mini_program"


for _name in ("subscribe_msg_popup", "subscribe_msg_change", "subscribe_msg_sent"):
    EXTRA_VALIDATORS[f"wechat/{_name}"] = _mini_program_push
for _name, _topic in (
    ("orders_create", "orders/create"),
    ("orders_updated", "orders/updated"),
    ("refunds_create", "refunds/create"),
    ("customers_create", "customers/create"),
):
    EXTRA_VALIDATORS[f"shopify/{_name}"] = _mapped_by(
        "shopify", "demo-brand.myshopify.com", **{"x-shopify-topic": _topic}
    )
for _name in ("sale", "refund", "member"):
    EXTRA_VALIDATORS[f"pos/{_name}"] = _mapped_by("pos", "demo-pos")
for _name in ("click", "lead"):
    EXTRA_VALIDATORS[f"ads/{_name}"] = _mapped_by("ads", "oceanengine")


def _feedback(data: Any) -> None:
    import json

    from cdp.connectors.base import Binding
    from cdp.connectors.feedback import push_item, sms_item
    from cdp.connectors.feedback_ses import parse_envelope, ses_events
    from cdp.ingest.events import parse_event

    binding = Binding(brand_id="demo-brand", label="sample")
    if isinstance(data, list):
        events = [e for receipt in data for e in sms_item(receipt, "aliyun", binding)]
    elif "events" in data:
        events = [e for item in data["events"] for e in push_item(item, "jpush", binding)]
    else:
        envelope = parse_envelope(json.dumps(data).encode())
        events = ses_events(json.loads(envelope["Message"]), binding) if envelope["Type"] == "Notification" else []
    for event in events:
        parse_event(event)


for _name in (
    "ses_delivery",
    "ses_bounce",
    "ses_complaint",
    "ses_open",
    "ses_click",
    "sns_subscription_confirmation",
    "sms_receipts",
    "push_opens",
):
    EXTRA_VALIDATORS[f"feedback/{_name}"] = _feedback


def _platform_answer(data: Any) -> None:
    """A recorded Tmall/JD API answer has the shape its mapping reads (see cdp.connectors.platforms.transport)."""
    from cdp.connectors.platforms.transport import check_recorded

    check_recorded(data)


EXTRA_VALIDATORS["tmall/taobao"] = _platform_answer  # the key is the path up to the first dot of the method name
EXTRA_VALIDATORS["jd/jingdong"] = _platform_answer


def _tag_engine_event(name: str) -> Callable[[Any], None]:
    """lifecycle.changed, audience.entered / audience.exited: published by the tag engine (cdp.tags.announcements)."""

    def check(data: Any) -> None:
        from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

        from cdp.shared.envelope import EventMetadata
        from cdp.tags.announcements import AudienceEntered, AudienceExited, TagTransition

        model = {"lifecycle_changed": TagTransition, "audience_entered": AudienceEntered}.get(name, AudienceExited)
        envelope = EventBridgeModel.model_validate(data)
        assert envelope.detail_type == model.event_name and envelope.source == model.event_source
        EventMetadata.model_validate(envelope.detail["metadata"])
        parsed = model.model_validate(envelope.detail["data"])
        assert parsed.model_dump(mode="json") == envelope.detail["data"]  # `from` round-trips under its own name

    return check


for _name in ("lifecycle_changed", "audience_entered", "audience_exited"):
    EXTRA_VALIDATORS[f"eventbridge/{_name}"] = _tag_engine_event(_name)


def _signal(data: Any) -> None:
    """`POST /v1/signals` bodies (cdp.app.campaign_api)."""
    import json
    from datetime import UTC, datetime

    from cdp.app.campaign_api import signal_of

    signal_of(json.dumps(data), "demo-brand", lambda _request: "p-1", datetime(2027, 1, 1, tzinfo=UTC))


EXTRA_VALIDATORS["signals/weather"] = _signal
EXTRA_VALIDATORS["signals/location"] = _signal


def _promotion_cart(data: Any) -> None:
    from cdp.offers.promotions import Cart

    Cart.model_validate(data["cart"])
    assert {"applied", "discount_minor", "payable_minor"} <= set(data["expected"])


for _path in (Path(__file__).resolve().parents[2] / "events" / "promotions" / "carts").glob("*.json"):
    EXTRA_VALIDATORS[f"promotions/carts/{_path.stem}"] = _promotion_cart
