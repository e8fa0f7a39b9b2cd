"""The campaign ASL executed by moto's Step Functions, with Lambda invokes routed to in-process Python.

The campaign Lambda is the real handler (real S3 artifact store under moto, in-memory profiles); the send
Lambda is a stand-in that honours the `SendBatchRequest` contract and plays the world (some people buy).
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction

from cdp import topology
from cdp.campaigns.models import AudienceDocument, CampaignSummary
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.service import audience_key, summary_key
from cdp.channels.models import SendBatchRequest, SendBatchResult
from cdp.ingest.events import parse_event
from cdp.profile.models import ConsentState, ModelScore, Profile, ProfileFacts, TagValue
from cdp.shared.time import utc_now
from functions.campaign import handler as campaign_handler
from tests.fakes.profiles import InMemoryProfiles

ROOT = Path(__file__).resolve().parents[3]
ASL = ROOT / "infra" / "statemachines" / topology.CAMPAIGN_MACHINE.asl_file
SAMPLE = ROOT / "events" / "sfn" / "campaign_input.json"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
T0 = utc_now() - timedelta(days=30)


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"


@dataclass
class World:
    """The stand-in send: records what it was asked, and makes the chosen responders buy right after a touch."""

    profiles: InMemoryProfiles
    s3: Any
    responders: dict[str, set[str]] = field(default_factory=dict)  # step -> persons who buy when touched
    organic: set[str] = field(default_factory=set)  # buy during the campaign whatever happens
    requests: list[SendBatchRequest] = field(default_factory=list)
    fail_with: Exception | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _orders: int = 0

    def buy(self, person_id: str) -> None:
        self._orders += 1
        event = parse_event(
            {
                "event_id": f"order-{self._orders}",
                "event_type": "order_placed",
                "source": "app",
                "brand_id": "sweet-bakery",
                "occurred_at": utc_now().isoformat(),
                "identifiers": [{"type": "member_card", "value": person_id}],
                "properties": {
                    "order_id": f"ord-{self._orders}",
                    "lines": [{"sku": "cake", "quantity": 1, "unit_price_minor": 12800}],
                    "total_minor": 12800,
                    "currency": "CNY",
                },
            }
        )
        self.profiles.add_events(person_id, [event])
        p = self.profiles.profiles[person_id]
        facts = p.facts.model_copy(update={"last_order_at": event.occurred_at})
        self.profiles.profiles[person_id] = p.model_copy(update={"facts": facts})

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = SendBatchRequest.model_validate(payload)  # the real contract of the send Lambda
        if self.fail_with is not None:
            raise self.fail_with
        assert request.batch_key is not None
        persons = json.loads(self.s3.get_object(Bucket=BUCKET, Key=request.batch_key)["Body"].read())
        with self._lock:
            self.requests.append(request)
            if request.step == "touch1" and len([r for r in self.requests if r.step == "touch1"]) == 1:
                for person_id in sorted(self.organic):
                    self.buy(person_id)
            for person_id in persons:
                if person_id in self.responders.get(request.step, set()):
                    self.buy(person_id)
        result = SendBatchResult(
            campaign_id=request.campaign_id,
            run_id=request.run_id,
            step=request.step,
            channel=request.channel,
            requested=len(persons),
            sent=len(persons),
            by_channel={request.channel: len(persons)},
        )
        return result.model_dump(mode="json")

    def persons_sent(self, step: str) -> list[str]:
        return sorted(p for r in self.requests if r.step == step for p in self._batch(r))

    def _batch(self, request: SendBatchRequest) -> list[str]:
        assert request.batch_key is not None
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=request.batch_key)["Body"].read())  # type: ignore[no-any-return]


def _profile(i: int, *, segment: str, score: float | None, sms: bool = True) -> Profile:
    return Profile(
        person_id=f"p{i:03d}",
        brand_id="sweet-bakery",
        created_at=T0,
        updated_at=T0,
        tags={
            "rfm_segment": TagValue(value=segment, since=T0),
            "lifecycle": TagValue(value="mature", since=T0),
            "purchased_last_7d": TagValue(value=False, since=T0),
        },
        scores={} if score is None else {"response": ModelScore(score=score, model_version="v1", scored_at=T0)},
        consent={
            "sms": ConsentState(granted=sms, changed_at=T0, source="crm"),
            "email": ConsentState(granted=True, changed_at=T0, source="crm"),
        },
        facts=ProfileFacts(),
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, Callable[[], World]]]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions")
        world = World(profiles=InMemoryProfiles(), s3=s3)
        monkeypatch.setattr(campaign_handler, "_ports", lambda: (world.profiles, S3ArtifactStore(BUCKET, client=s3)))

        def invoke(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            payload = json.loads(event) if isinstance(event, str | bytes) else event
            try:
                if self.function_name == topology.CAMPAIGN.local_name:
                    result = campaign_handler.lambda_handler(payload, LambdaContext(self.function_name))
                else:
                    result = world.send(payload)
            except Exception as exc:
                return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}), True, ""
            return json.dumps(result), False, ""

        monkeypatch.setattr(LambdaFunction, "_invoke_lambda", invoke)
        yield s3, sfn, lambda: world


def _deploy(sfn: Any) -> str:
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="campaign-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("handler.py", "def lambda_handler(event, context):\n    return event\n")
    arns = {}
    for placeholder, spec in topology.CAMPAIGN_MACHINE.functions.items():
        fn = lam.create_function(
            FunctionName=spec.local_name,
            Runtime="python3.12",
            Role=role,
            Handler=spec.handler,
            Code={"ZipFile": code.getvalue()},
        )
        arns[placeholder] = fn["FunctionArn"]
    definition = ASL.read_text()
    for placeholder, arn in arns.items():
        definition = definition.replace("${" + placeholder + "}", arn)
    return sfn.create_state_machine(  # type: ignore[no-any-return]
        name=topology.CAMPAIGN_MACHINE.local_name, definition=definition, roleArn=role
    )["stateMachineArn"]


def _run(sfn: Any, machine: str, request: dict[str, Any], name: str) -> dict[str, Any]:
    execution = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps({"request": request}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("execution did not finish in 30 s")


def _request(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())["request"]
    data.update({"wait_seconds": 1, "batch_size": 7}, **overrides)
    return data


def test_campaign_runs_end_to_end_with_holdout_follow_up_and_summary(aws: tuple[Any, Any, Callable[[], World]]) -> None:
    s3, sfn, get_world = aws
    world = get_world()
    # Given 60 scored champions/loyal members, 5 without SMS consent, 5 churned-looking "hibernating" ones
    people = [_profile(i, segment="champions" if i % 2 else "loyal", score=i / 100) for i in range(60)]
    people += [_profile(60 + i, segment="champions", score=0.99, sms=False) for i in range(5)]
    people += [_profile(65 + i, segment="hibernating", score=0.99) for i in range(5)]
    people.append(_profile(70, segment="champions", score=None))
    world.profiles.profiles = {p.person_id: p for p in people}
    # And a budget for 40 SMS (200 fen at 5 fen), a 25% holdout, and known responders
    world.responders = {"touch1": {f"p{i:03d}" for i in range(59, 50, -1)}, "touch2": {"p040", "p041"}}
    world.organic = {"p045", "p046", "p047", "p048"}
    request = _request(
        run_id="cake-r1",
        budget={"amount_minor": 200, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}},
        holdout_fraction=0.25,
    )
    machine = _deploy(sfn)

    # When the state machine runs
    out = _run(sfn, machine, request, "cake-r1")

    # Then it succeeds with a small output pointing at the summary
    assert out["status"] == "SUCCEEDED", out
    output = json.loads(out["output"])
    assert output["summary_key"] == summary_key("cake-r1")
    # And the audience is the 40 best-scored eligible members, split into treatment and holdout
    store = S3ArtifactStore(BUCKET, client=s3)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("cake-r1")))
    selected = {m.person_id for m in doc.treatment} | {m.person_id for m in doc.holdout}
    assert selected == {f"p{i:03d}" for i in range(20, 60)}
    treated = {m.person_id for m in doc.treatment}
    # And touch1 went to exactly the treatment, in batches of at most 7, each a valid send request
    assert world.persons_sent("touch1") == sorted(treated)
    assert all(r.channel == "sms" and r.offer is not None for r in world.requests if r.step == "touch1")
    # And touch2 (e-mail) went to the treated who had not bought by the check
    bought = (world.responders["touch1"] | world.organic) & treated
    assert world.persons_sent("touch2") == sorted(treated - bought)
    assert all(r.channel == "email" and r.template.subject for r in world.requests if r.step == "touch2")
    # And the summary compares the groups with what really happened
    summary = CampaignSummary.model_validate(store.get_json(summary_key("cake-r1")))
    converted = bought | ({"p040", "p041"} & (treated - bought))
    held = {m.person_id for m in doc.holdout}
    assert summary.treatment.size == len(treated) and summary.holdout.size == len(held)
    assert summary.treatment.converted == len(converted) == output["treatment_converted"]
    assert summary.holdout.converted == len(world.organic & held) == output["holdout_converted"]
    assert summary.treatment.revenue_minor == 12800 * len(converted)
    assert summary.messages_by_channel == {"sms": len(treated), "email": len(treated - bought)}
    assert summary.cost_minor == 5 * len(treated) + len(treated - bought) == output["cost_minor"]


def test_empty_audience_skips_sending_and_still_summarizes(aws: tuple[Any, Any, Callable[[], World]]) -> None:
    _, sfn, get_world = aws
    world = get_world()
    # Given nobody matches the audience
    world.profiles.profiles = {"p001": _profile(1, segment="hibernating", score=0.5)}
    machine = _deploy(sfn)
    # When the campaign runs
    out = _run(sfn, machine, _request(run_id="empty-r1"), "empty-r1")
    # Then it succeeds without any send, and the summary shows zeros
    assert out["status"] == "SUCCEEDED", out
    assert world.requests == []
    output = json.loads(out["output"])
    assert (output["treatment"], output["holdout"], output["cost_minor"]) == (0, 0, 0)


def test_a_failing_send_fails_the_execution_with_its_cause(aws: tuple[Any, Any, Callable[[], World]]) -> None:
    _, sfn, get_world = aws
    world = get_world()
    # Given a send Lambda that fails with a non-retryable error
    world.profiles.profiles = {p.person_id: p for p in (_profile(i, segment="champions", score=0.5) for i in range(3))}
    world.fail_with = ValueError("template variable 'coupon' is undefined")
    machine = _deploy(sfn)
    # When the campaign runs (the run id is derived from the execution name)
    request = _request()
    request.pop("run_id", None)
    out = _run(sfn, machine, request, "fail-1")
    # Then the execution fails with the send error as its cause
    assert out["status"] == "FAILED"
    assert out.get("error") == "CampaignFailed", out
    cause = json.loads(out["cause"])
    assert cause["errorType"] == "ValueError" and "coupon" in cause["errorMessage"]


class RecordedPlans:
    def __init__(self) -> None:
        self.reserved: list[tuple[str, list[str], int]] = []
        self.released: list[tuple[str, list[str]]] = []

    def reserve(self, brand_id: str, run_id: str, offer_ids: Any, persons: int, now: Any) -> int:
        self.reserved.append((run_id, list(offer_ids), persons))
        return 2_000 * persons

    def release(self, brand_id: str, run_id: str, offer_ids: Any, now: Any) -> None:
        self.released.append((run_id, list(offer_ids)))


def test_a_run_failing_after_its_selection_gives_its_offer_plans_back(
    aws: tuple[Any, Any, Callable[[], World]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sfn, get_world = aws
    world = get_world()
    plans = RecordedPlans()
    monkeypatch.setattr(campaign_handler, "_plans", lambda: plans)
    # Given a run whose first send issues the catalog offer cake-20, and a send Lambda that fails for good
    world.profiles.profiles = {p.person_id: p for p in (_profile(i, segment="champions", score=0.5) for i in range(3))}
    world.fail_with = ValueError("the SMS template does not render")
    touch1 = {**_request()["touch1"], "offer": {"offer_id": "cake-20"}}
    out = _run(sfn, _deploy(sfn), _request(run_id="fail-plans-1", touch1=touch1), "fail-plans-1")
    # Then the selection reserved the plan, the failure gave it back, and the execution still fails with its cause
    assert [(r[0], r[1]) for r in plans.reserved] == [("fail-plans-1", ["cake-20"])]
    assert plans.released == [("fail-plans-1", ["cake-20"])]
    assert (out["status"], out.get("error")) == ("FAILED", "CampaignFailed"), out
    assert "does not render" in json.loads(out["cause"])["errorMessage"]


def test_ab_variants_of_the_first_send_go_out_per_arm_and_are_measured_each(
    aws: tuple[Any, Any, Callable[[], World]],
) -> None:
    s3, sfn, get_world = aws
    world = get_world()
    # Given 60 scored members, a budget for all of them, and two arms of the first send: SMS and e-mail
    world.profiles.profiles = {p.person_id: p for p in (_profile(i, segment="loyal", score=i / 100) for i in range(60))}
    sms = {"channel": "sms", "template": {"body": "20 off today"}}
    email = {"channel": "email", "template": {"subject": "20 off", "body": "20 off today"}}
    variants = [{"name": "by_sms", "share": 0.5, "touch1": sms}, {"name": "by_email", "share": 0.5, "touch1": email}]
    world.responders = {"touch1": {f"p{i:03d}" for i in range(0, 60, 3)}}
    budget = {"amount_minor": 600, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}}
    request = _request(run_id="ab-r1", budget=budget, holdout_fraction=0.2, variants=variants, second_touch=False)

    out = _run(sfn, _deploy(sfn), request, "ab-r1")

    # Then every treated person got the first send of their stable arm, one batch list per arm
    assert out["status"] == "SUCCEEDED", out
    store = S3ArtifactStore(BUCKET, client=s3)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("ab-r1")))
    arm = {m.person_id: m.variant for m in doc.treatment}
    assert set(arm.values()) == {"by_sms", "by_email"}
    by_channel = {
        channel: sorted(
            p for r in world.requests if r.step == "touch1" and r.channel == channel for p in world._batch(r)
        )
        for channel in ("sms", "email")
    }
    assert by_channel["sms"] == sorted(p for p, a in arm.items() if a == "by_sms")
    assert by_channel["email"] == sorted(p for p, a in arm.items() if a == "by_email")
    assert doc.manifest.budget_reserved_minor == 5 * len(by_channel["sms"]) + len(by_channel["email"])
    # And the summary measures each arm against the holdout, the arms adding up to the treatment
    summary = CampaignSummary.model_validate(store.get_json(summary_key("ab-r1")))
    assert set(summary.variants) == {"by_sms", "by_email"}
    assert sum(v.treatment.size for v in summary.variants.values()) == summary.treatment.size
    assert sum(v.treatment.converted for v in summary.variants.values()) == summary.treatment.converted
