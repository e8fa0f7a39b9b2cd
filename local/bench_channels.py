"""`cdp bench --suite channels`: what sending and receipts cost per 1M at AWS list prices, and each channel's
throughput at its provider's rate limit.

One local runtime; demo-brand's `senders` in the sources secret point at loopback fakes speaking each provider's
protocol (`cdp_local.fakes`): Alibaba Cloud SMS (sms), a WeChat official account's template messages (wechat), the
brand's webhook endpoint (webhook), and e-mail through SES v2 on moto (the runtime's verified identity), every
account at `rate_per_second = rate`.

1. `messages` opted-in persons per channel are made through the real ingest path (`consent_changed` events, posted
   to /v1/events in batches of 100 and drained; their ids then read from the identity index), then sent one campaign
   step per channel by the send function (`person_ids` batches of up to 500). Throughput is the wall clock of those
   invocations; each provider's own record of arrival times (the fakes' `sent`, the webhook receiver's accepted
   deliveries, each SendEmail as it leaves for moto's SES) says how many messages reached it in each one-second
   window of the clock, the windows the rate limiter counts in (`max_per_second`, beside the limiter's own counters:
   `limiter_max_per_window`; `max_in_sliding_second` is any one-second span, which a fixed-window limiter may fill up
   to twice over across a window boundary). The e-mail account names no configuration set, so the local runtime
   publishes no SES events of its own; the bench puts them in step 3.
2. The AWS calls of the send path and their billed units (`ApiCallCounter`, DynamoDB by item size): the ledger claim
   and mark_sent, the contact history (demo-brand has frequency caps), the profile's message record, the message
   log's BatchWrite and run counts, the rate limiter's counter writes, the short links of the SMS (its template names
   the link in the text and as a variable, as the README's example does: two per SMS), the batch's profile reads.
   The provider's own call is not AWS and is not counted (for e-mail that is SES SendEmail itself, billed by SES per
   message: left out like the SMS fee). One warm-up send per channel comes first (cold starts, the secret, the
   WeChat access token), so the figures are a warm container's. The Lambda time a batch spends waiting for its
   rate's windows is priced apart (`rate_wait_cost_per_1m_sends_usd`), and `modelled_aws_messages_per_s` is what one
   send invocation reaches on AWS by the cost model's call latencies.
3. Receipts, about 1 in 20 reporting a failure: each SMS's delivery report from the fake (`receipts()`) posted to
   /v1/feedback/sms/aliyun in batches of 100; for each WeChat template message the TEMPLATESENDJOBFINISH push WeChat
   posts to the official account (one request each); for each e-mail SES's "Email Delivered" / "Email Bounced" event
   on the default bus (as the configuration set's event destination puts it: moto's SES emits none). Then drained,
   and the run's counts in the message log say how many messages moved (`receipts_moved`, `after_receipts.*`).
   Priced per 1M receipts: the HTTP API request, ingest (dedupe, the raw archive, the bus) or the delivery events
   function, and everything the receipt events then wake (identity files them on the person's timeline, tags,
   journeys), with the message log's own part (the receipts queue and function, the conditional update, the counts)
   shown by function (`cost_per_1m_receipts.by_function.message_receipts`).
4. Preference changes: every marketing e-mail of step 1 names its preference link in `List-Unsubscribe` (captured
   as the SendEmail leaves for moto's SES); a mail client's one-click unsubscribe (RFC 8058: `POST` of the body
   `List-Unsubscribe=One-Click`) is posted to each message's `/v1/preferences/{token}` through the HTTP API, one
   request each (the warm-up message's first: the preference centre's cold start), then drained. The preference
   centre function publishes a `consent_changed` event (the raw archive, the dedupe, the bus) that the profile
   folds and the message log files (the message ends `unsubscribed`). Priced per 1M changes: the HTTP API request,
   the function's Lambda time and calls, and everything the event wakes (`cost_per_1m_preference_changes_usd`, by
   function and service, calls per change by operation); the run's counts in the message log
   (`after_preference_changes.*`) and the persons' profiles (`email_consent_withdrawn`) say what moved.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from cdp_local import cost_model
from cdp_local.aws_costs import (
    ApiCallCounter,
    OpUsage,
    is_sdk_call,
    merge_usage,
    sdk_calls,
    usage_totals,
    usage_usd,
)
from cdp_local.bench import Metric, batches, metered_runtime
from cdp_local.fakes.webhook_receiver import FakeWebhookReceiver

# ruff: noqa: RUF001 - Chinese message texts, with full-width punctuation

BRAND = "demo-brand"
CHANNELS = ("sms", "wechat", "email", "webhook")
OA = "wx-local-oa"  # the local official account (cdp_local.runtime.environment.LOCAL_SOURCES)
OA_TOKEN = "local-wechat-token"  # noqa: S105 - its documented local callback token
OA_APP_SECRET = "bench-oa-app-secret-0123456789abcdef"  # noqa: S105 - the fake WeChat API's, set for the bench
SMS_RELAY_SECRET = "local-sms-secret"  # noqa: S105 - the local `aliyun` receipts relay of demo-brand
SMS_TEMPLATE = "SMS_468190099"
WX_TEMPLATE = "tmpl-winter-cakes"
TARGET = "https://shop.demo-bakery.example.cn/winter-cakes?utm_source=cdp"
STEP = "touch1"
MAX_BATCH = 500  # SendBatchRequest.person_ids
RECEIPTS_PER_POST = 100
FAILED_EVERY = 20  # one receipt in 20 reports a failure
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"  # RFC 8058: what a mail client posts to the List-Unsubscribe URL


def campaign_of(channel: str, warm: bool = False) -> str:
    return f"bench-{'warm-' if warm else ''}{channel}"


def run_of(campaign_id: str) -> str:
    return f"{campaign_id}-r1"


# ---- the persons ---------------------------------------------------------------------------------------------


def _address(channel: str, i: int) -> dict[str, str]:
    """The identifier of person i of a channel."""
    if channel == "sms":
        return {"type": "phone", "value": f"139{i:08d}"}
    if channel == "wechat":
        return {"type": "wechat_openid", "value": f"oBench{i:022d}", "scope": OA}
    if channel == "email":
        return {"type": "email", "value": f"bench.{i:06d}@example.com"}
    return {"type": "user_id", "value": f"bench-wh-{i:06d}"}


def _consent(channel: str, i: int, at: str) -> dict[str, Any]:
    return {
        "event_id": f"bench-consent-{channel}-{i}",
        "event_type": "consent_changed",
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": at,
        "identifiers": [_address(channel, i)],
        "properties": {"channel": channel, "granted": True, "purpose": "marketing"},
    }


def _template(channel: str) -> dict[str, Any]:
    if channel == "sms":  # the README's form: the text the person reads, and the registered template's variables
        return {
            "body": f"【本地测试】冬季蛋糕上市，详情 {TARGET} 回TD退订",
            "sms": {"code": SMS_TEMPLATE, "params": {"link": TARGET}},
        }
    if channel == "wechat":
        return {
            "body": "冬季蛋糕上市",
            "wechat": {"template_id": WX_TEMPLATE, "fields": {"thing1": "冬季蛋糕", "amount2": "20元"}, "url": TARGET},
        }
    if channel == "email":
        return {"subject": "冬季蛋糕上市", "body": f"冬季蛋糕上市，详情 {TARGET}"}
    return {"body": f"冬季蛋糕上市，详情 {TARGET}"}


def _request(channel: str, campaign_id: str, person_ids: list[str]) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "run_id": run_of(campaign_id),
        "brand_id": BRAND,
        "step": STEP,
        "channel": channel,
        "template": _template(channel),
        "person_ids": person_ids,
    }


# ---- the providers' arrival times ----------------------------------------------------------------------------


class _TimedWebhookReceiver(FakeWebhookReceiver):
    """The webhook fake, also noting when each delivery it accepted arrived (its `received` keeps no time)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Any:
        arrived = time.time()
        answer = super().answer(method, path, headers, body)
        if answer.status == 200 and not json.loads(answer.body).get("duplicate"):
            with self._state:
                self.arrivals.append(arrived)
        return answer


@contextmanager
def _ses_arrivals(arrivals: list[float], unsubscribe: dict[str, str]) -> Iterator[None]:
    """When each SendEmail reached SES (moto): noted as the request leaves the default session's clients, ahead of
    moto's own handler of it; with the e-mail's `List-Unsubscribe` URL (its preference link) by our message id (the
    `message_id` tag)."""
    import boto3

    def noted(request: Any = None, **_: Any) -> None:
        arrivals.append(time.time())
        if request is not None and request.body:
            message_id, url = _unsubscribe_of(json.loads(request.body))
            if message_id and url:
                unsubscribe[message_id] = url

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    events = boto3.DEFAULT_SESSION.events
    events.register_first("before-send.sesv2.SendEmail", noted)
    try:
        yield
    finally:
        events.unregister("before-send.sesv2.SendEmail", noted)


def _unsubscribe_of(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the message_id tag, the List-Unsubscribe URL without its angle brackets) of a SendEmail's parameters."""
    tags = {tag.get("Name"): tag.get("Value") for tag in params.get("EmailTags", [])}
    headers = params.get("Content", {}).get("Simple", {}).get("Headers", [])
    url = next((h.get("Value", "") for h in headers if h.get("Name", "").lower() == "list-unsubscribe"), None)
    return tags.get("message_id"), url.strip().removeprefix("<").removesuffix(">") if url else None


def rate_windows(arrivals: Sequence[float]) -> tuple[int, int, int]:
    """(most arrivals in one window of the clock's seconds, most in any one-second span, windows holding any)."""
    if not arrivals:
        return 0, 0, 0
    per_window = Counter(int(t) for t in arrivals)
    ordered = sorted(arrivals)
    sliding = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= 1.0:
            start += 1
        sliding = max(sliding, end - start + 1)
    return max(per_window.values()), sliding, len(per_window)


# ---- AWS usage by function -----------------------------------------------------------------------------------


class _ByFunction(ApiCallCounter):
    """An ApiCallCounter that also keeps each call's billed usage under the function that made it: the handler's
    own calls under its function, the event source mapping's (a queue's receives and deletes, the Invoke) under the
    queue's consumer, what `add` bills (the HTTP API's requests) under its service, the rest under "runtime"."""

    def __init__(self) -> None:
        super().__init__()
        self.by_function: defaultdict[str, dict[str, OpUsage]] = defaultdict(lambda: defaultdict(OpUsage))
        self._consumers = _queue_consumers()
        self._functions = _function_keys()

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self.by_function.clear()

    def add(self, op: str, units: dict[str, float], calls: int = 1) -> None:
        super().add(op, units, calls)
        with self._lock:  # what no SDK call shows (an HTTP API request): under its service
            mine = self.by_function[op.split(".", 1)[0]][op]
            mine.calls += calls
            for key, n in units.items():
                mine.units[key] += n

    def _bill(self, call: Any, parsed: dict[str, Any], reads: list[int] | None) -> None:
        with self._lock:
            before = {op: (u.calls, dict(u.units)) for op, u in self.by_op.items()}
            super()._bill(call, parsed, reads)
            owner = self._owner(call)
            for op, usage in self.by_op.items():
                calls, units = before.get(op, (0, {}))
                if usage.calls == calls and usage.units == units:
                    continue
                mine = self.by_function[owner][op]
                mine.calls += usage.calls - calls
                for key, n in usage.units.items():
                    mine.units[key] += n - units.get(key, 0.0)

    def _owner(self, call: Any) -> str:
        if call.frame is not None:
            return str(call.frame.function)
        if call.service == "sqs":
            return self._consumers.get(str(call.params.get("QueueUrl", "")).rsplit("/", 1)[-1], "runtime")
        if (call.service, call.op) == ("lambda", "Invoke"):
            return self._functions.get(str(call.params.get("FunctionName", "")), "runtime")
        return "runtime"

    def function_usage(self) -> dict[str, dict[str, OpUsage]]:
        """Usage by function and operation; a function's Lambda requests, duration and logs under it (cold starts
        settled as in `settled`)."""
        out: dict[str, dict[str, OpUsage]] = {fn: dict(ops) for fn, ops in self.by_function.items()}
        for op, usage in self.settled().items():
            service, _, name = op.partition(".")
            if service in ("lambda", "logs") and name in self._functions.values():
                out.setdefault(name, {})[op] = usage
        return out


def _queue_consumers() -> dict[str, str]:
    from cdp import topology

    return {rule.queue.local_name: rule.consumer.key for rule in topology.BUS_RULES}


def _function_keys() -> dict[str, str]:
    from cdp import topology

    return {f.local_name: f.key for f in topology.FUNCTIONS}


# ---- pricing -------------------------------------------------------------------------------------------------


def _priced(prefix: str, what: str, usage: dict[str, OpUsage], n: int, note: str) -> dict[str, Metric]:
    """cost per 1M, AWS calls and billed WRU / RRU per unit, for `n` units of `what` (send, receipt)."""
    totals = usage_totals(usage)
    per = 1 / max(n, 1)
    return {
        f"{prefix}.cost_per_1m_{what}s_usd": {
            "value": round(usage_usd(usage) * 1_000_000 * per, 2),
            "unit": f"USD: {note}",
        },
        f"{prefix}.aws_calls_per_{what}": {"value": round(sdk_calls(usage) * per, 3), "unit": "calls"},
        f"{prefix}.billed_wru_per_{what}": {"value": round(totals.get("dynamodb_wru", 0.0) * per, 3), "unit": "wru"},
        f"{prefix}.billed_rru_per_{what}": {"value": round(totals.get("dynamodb_rru", 0.0) * per, 3), "unit": "rru"},
    }


def _by_service(prefix: str, usage: dict[str, OpUsage], n: int) -> dict[str, Metric]:
    by_service: defaultdict[str, float] = defaultdict(float)
    for op, op_usage in usage.items():
        by_service[op.split(".", 1)[0]] += op_usage.usd()
    return {
        f"{prefix}.{service}.usd": {"value": round(usd * 1_000_000 / max(n, 1), 3), "unit": "USD per 1M"}
        for service, usd in sorted(by_service.items(), key=lambda item: -item[1])
        if usd > 0
    }


def _item_kind(kind: str, runs: set[str]) -> str:
    """wru_by_item's kinds read as items: a run-count shard's sort key is the run id (`{run}#{shard}`, a journey
    step's `{run}~{place}~{arm}#{shard}`)."""
    return "MSGSTATS" if kind.split("~", 1)[0] in runs else kind


# ---- the benchmark -------------------------------------------------------------------------------------------


@dataclass
class _Sent:
    channel: str
    persons: list[str]
    seconds: float = 0.0
    usage: dict[str, OpUsage] = field(default_factory=dict)
    wru_by_item: Counter[str] = field(default_factory=Counter)
    send_ms: float = 0.0  # the send function's modelled billed ms (warm), over the channel's batches
    arrivals: list[float] = field(default_factory=list)
    places: dict[int, int] = field(default_factory=dict)  # the rate limiter's own counters: places per window


# a channel's receipts: (how many of the step's report a failure, post the warm-up's, post the step's)
_Posting = tuple[int, Callable[[], None], Callable[[], None]]


def _fails(i: int) -> bool:
    """Person i's receipt reports a failure (1 in 20 of the step's; never the warm-up's)."""
    return i != 0 and i % FAILED_EVERY == 0


def _ses_event(message: Any, address: str, bounced: bool) -> dict[str, Any]:
    """SES's event of one e-mail on EventBridge: the message's tags as the send path set them."""
    from cdp_local.runtime.environment import LOCAL_EMAIL_FROM

    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    mail: dict[str, Any] = {
        "timestamp": message.sent_at.isoformat().replace("+00:00", "Z"),
        "source": LOCAL_EMAIL_FROM,
        "messageId": message.provider_id,
        "destination": [address],
        "tags": {"message_id": [message.message_id], "campaign_id": [message.campaign_id], "brand_id": [BRAND]},
    }
    if bounced:
        kind, detail_type = "Bounce", "Email Bounced"
        detail: dict[str, Any] = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1", "action": "failed"}],
            "timestamp": at,
        }
    else:
        kind, detail_type = "Delivery", "Email Delivered"
        detail = {"timestamp": at, "recipients": [address], "smtpResponse": "250 ok"}
    body = {"eventType": kind, "mail": mail, kind[0].lower() + kind[1:]: detail}
    return {"Source": "aws.ses", "DetailType": detail_type, "EventBusName": "default", "Detail": json.dumps(body)}


@dataclass
class _Receipts:
    posted: int
    failures: int  # of them, reporting a failure
    usage: dict[str, OpUsage]
    by_function: dict[str, dict[str, OpUsage]]
    counts: dict[str, int] = field(default_factory=dict)  # the run's messages by status, after the receipts


@dataclass
class _PreferenceChanges:
    posted: int  # one-click unsubscribes, one per e-mail of the step
    usage: dict[str, OpUsage]
    by_function: dict[str, dict[str, OpUsage]]
    counts: dict[str, int] = field(default_factory=dict)  # the run's e-mails by status, after the changes
    withdrawn: int = 0  # of the step's persons, those whose e-mail marketing consent is now withdrawn


def channels_benchmark(messages: int = 200, rate: float = 50.0) -> dict[str, Metric]:
    """Send `messages` per channel at `rate` messages/s per account, post their receipts back, unsubscribe each
    e-mail's person through its one-click link, and price all three."""
    if messages < 1 or rate <= 0:
        raise ValueError("messages must be at least 1 and rate above 0")
    counter = _ByFunction()
    with metered_runtime(counter) as (rt, stack):
        run = _Run(rt, counter, stack, messages, rate)
        run.accounts()
        run.persons()
        run.warm_up()
        for ch in CHANNELS:
            run.send_step(ch)
        run.receipts()
        run.preference_changes()
    return _report(messages, rate, run.sent, run.receipted, run.preferences)


class _Run:
    """One benchmark run on an open runtime: the fakes, the persons, the sends and the receipts."""

    def __init__(self, rt: Any, counter: _ByFunction, stack: ExitStack, messages: int, rate: float) -> None:
        from cdp_local.fakes.aliyun_sms import FakeAliyunSms
        from cdp_local.fakes.wechat_api import FakeWeChatApi

        self.rt = rt
        self.counter = counter
        self.messages = messages
        self.rate = rate
        self.ses_times: list[float] = []
        self.unsubscribe_urls: dict[str, str] = {}  # each e-mail's List-Unsubscribe URL by message id
        stack.enter_context(_ses_arrivals(self.ses_times, self.unsubscribe_urls))
        self.aliyun = stack.enter_context(FakeAliyunSms())
        self.aliyun.register_template(SMS_TEMPLATE, "冬季蛋糕上市，详情 ${link} 回TD退订")
        self.wechat = stack.enter_context(FakeWeChatApi())
        self.wechat.add_app(OA, OA_APP_SECRET, "official_account")
        self.wechat.add_template(OA, WX_TEMPLATE, ["thing1", "amount2"])
        self.webhook = stack.enter_context(_TimedWebhookReceiver())
        self.person_ids: dict[str, list[str]] = {}  # per channel; the first one is the warm-up's
        self.sent: dict[str, _Sent] = {}
        self.receipted: dict[str, _Receipts] = {}
        self.preferences: _PreferenceChanges | None = None
        self._warm: dict[str, int] = {}
        self._nonces = itertools.count(1)

    def accounts(self) -> None:
        """demo-brand's accounts, in the sources secret before any function reads it (a container keeps it 5
        minutes); the official account's AppSecret beside its callback token."""
        from cdp import topology
        from cdp_local.runtime.environment import LOCAL_EMAIL_FROM

        secrets = self.rt.client("secretsmanager")
        document = json.loads(secrets.get_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME)["SecretString"])
        document["wechat"][OA] = {**document["wechat"][OA], "app_secret": OA_APP_SECRET}
        rate = self.rate
        document["senders"] = {
            BRAND: {
                "sms": {"default": self.aliyun.account(rate_per_second=rate)},
                "email": {"provider": "ses", "from_address": LOCAL_EMAIL_FROM, "rate_per_second": rate},
                "wechat": self.wechat.senders(OA, rate_per_second=rate),
                "webhook": self.webhook.account(rate_per_second=rate),
            }
        }
        secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(document))

    def persons(self) -> None:
        """`messages` + 1 opted-in persons per channel through ingest, then their person ids from the identity index
        (read directly, 100 a call: the profile API's 360 view of each would take much of the run)."""
        from cdp import topology
        from cdp.identifiers.model import Identifier
        from cdp.profile import keys
        from cdp.profile.dynamodb import DynamoProfileStore

        headers = {"content-type": "application/json", "x-api-key": self.rt.api_key}
        at = datetime.now(UTC).isoformat()
        consents = [_consent(ch, i, at) for ch in CHANNELS for i in range(self.messages + 1)]
        for chunk in batches(consents, 100):
            response = self.rt.http("POST", "/v1/events", json.dumps({"batch": chunk}).encode(), headers)
            if response.status != 202 or json.loads(response.body).get("accepted") != len(chunk):
                raise RuntimeError(f"POST /v1/events: {response.status} {response.body[:300]!r}")
            self.rt.drain()
        db = self.rt.client("dynamodb")
        table = topology.PROFILES_TABLE.local_name
        pk, sk = topology.PROFILES_TABLE.partition_key, topology.PROFILES_TABLE.sort_key
        namespace = DynamoProfileStore(table, client=db).namespace_of(BRAND)
        wanted = {
            keys.identifier_pk(namespace, Identifier.model_validate(_address(ch, i)).key): (ch, i)
            for ch in CHANNELS
            for i in range(self.messages + 1)
        }
        found: dict[tuple[str, int], str] = {}
        pks = list(wanted)
        for start in range(0, len(pks), 100):
            request = [{pk: {"S": key}, sk: {"S": keys.IDENTIFIER_SK}} for key in pks[start : start + 100]]
            answer = db.batch_get_item(RequestItems={table: {"Keys": request, "ConsistentRead": True}})
            if answer.get("UnprocessedKeys"):
                raise RuntimeError("the identity index answered only part of a read")
            for item in answer["Responses"][table]:
                found[wanted[item[pk]["S"]]] = item["person_id"]["S"]
        for ch in CHANNELS:
            missing = [i for i in range(self.messages + 1) if (ch, i) not in found]
            if missing:
                raise RuntimeError(f"no person holds {_address(ch, missing[0])} ({len(missing)} {ch} persons missing)")
            self.person_ids[ch] = [found[(ch, i)] for i in range(self.messages + 1)]
        for i in range(self.messages + 1):
            self.wechat.follow(OA, _address("wechat", i)["value"])

    def _send(self, ch: str, campaign_id: str, ids: list[str]) -> None:
        from cdp import topology

        for start in range(0, len(ids), MAX_BATCH):
            chunk = ids[start : start + MAX_BATCH]
            result = self.rt.invoke(topology.SEND.key, _request(ch, campaign_id, chunk))
            if result.get("sent") != len(chunk):
                raise RuntimeError(f"{ch}: {len(chunk)} to send, the send function answered {result}")

    def arrivals(self, ch: str) -> list[float]:
        """When each message reached its provider, by the provider's own record."""
        if ch == "sms":
            return [s.at.timestamp() for s in self.aliyun.sent]
        if ch == "wechat":
            return [m.sent_at for m in self.wechat.sent]
        if ch == "email":
            return list(self.ses_times)
        return list(self.webhook.arrivals)

    def warm_up(self) -> None:
        """One message per channel first: the send function's cold start, the sources secret, the WeChat token."""
        for ch in CHANNELS:
            self._send(ch, campaign_of(ch, warm=True), self.person_ids[ch][:1])
            self._warm[ch] = len(self.arrivals(ch))
        self.rt.drain()

    def send_step(self, ch: str) -> None:
        """The channel's campaign step to its persons, timed and metered."""
        from cdp import topology

        self.counter.reset()
        batch = _Sent(ch, self.person_ids[ch][1:])
        t0 = time.perf_counter()
        self._send(ch, campaign_of(ch), batch.persons)
        batch.seconds = time.perf_counter() - t0
        self.rt.drain()  # whatever the sends put on the bus is theirs too
        batch.usage = self.counter.settled()
        batch.wru_by_item = Counter(self.counter.wru_by_item)
        batch.send_ms = float(sum(self.counter.lambda_ms.get(topology.SEND.key, [])))
        batch.arrivals = self.arrivals(ch)[self._warm[ch] :]
        if len(batch.arrivals) != self.messages:
            raise RuntimeError(f"{ch}: {len(batch.arrivals)} of {self.messages} messages reached the provider")
        batch.places = self.places(ch)
        self.sent[ch] = batch

    def places(self, ch: str) -> dict[int, int]:
        """The rate limiter's counters of the channel's account (`RATE#{channel}:...#{window}`): places taken per
        window (read after the step is metered)."""
        from cdp import topology

        pages = (
            self.rt.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName=topology.LEDGER_TABLE.local_name,
                FilterExpression="begins_with(#pk, :rate)",
                ExpressionAttributeNames={"#pk": topology.LEDGER_TABLE.partition_key},
                ExpressionAttributeValues={":rate": {"S": f"RATE#{ch}:"}},
            )
        )
        out: dict[int, int] = {}
        for page in pages:
            for item in page["Items"]:
                window = int(item[topology.LEDGER_TABLE.partition_key]["S"].rsplit("#", 1)[1])
                out[window] = int(item["n"]["N"])
        return out

    def receipts(self) -> None:
        """The receipts of the warm-up first (the functions' cold starts), then the step's, metered; then the run's
        counts in the message log."""
        from cdp import topology
        from cdp.channels.messages import DynamoMessageLog

        log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=self.rt.client("dynamodb"))
        posts = {"sms": self._sms_receipts(), "wechat": self._wechat_receipts(), "email": self._ses_receipts(log)}
        for _, warm, _ in posts.values():
            warm()
        for ch, (failures, _, post) in posts.items():
            self.counter.reset()
            post()
            got = _Receipts(self.messages, failures, self.counter.settled(), self.counter.function_usage())
            campaign_id = campaign_of(ch)
            got.counts = log.counts(BRAND, campaign_id).get(run_of(campaign_id), {}).get(ch, {})
            self.receipted[ch] = got

    def preference_changes(self) -> None:
        """Each e-mail's one-click unsubscribe to the preference link its List-Unsubscribe names: the warm-up's first
        (the preference centre's cold start), then the step's, metered; then the run's counts in the message log and
        the persons' e-mail consent."""
        from cdp import topology
        from cdp.channels.messages import DynamoMessageLog
        from cdp.channels.models import message_id_for
        from cdp.profile.dynamodb import DynamoProfileStore

        paths: list[str] = []
        for warm, persons in ((True, self.person_ids["email"][:1]), (False, self.person_ids["email"][1:])):
            campaign_id = campaign_of("email", warm)
            for person in persons:
                message_id = message_id_for(campaign_id, STEP, person)
                url = self.unsubscribe_urls.get(message_id)
                if url is None:
                    raise RuntimeError(f"e-mail {message_id} reached SES without a List-Unsubscribe header")
                paths.append(urlsplit(url).path)
        self._post_one_click(paths[:1])
        self.counter.reset()
        self._post_one_click(paths[1:])
        got = _PreferenceChanges(len(paths) - 1, self.counter.settled(), self.counter.function_usage())
        db = self.rt.client("dynamodb")
        log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=db)
        campaign_id = campaign_of("email")
        got.counts = log.counts(BRAND, campaign_id).get(run_of(campaign_id), {}).get("email", {})
        profiles = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=db)
        found = profiles.get_many(self.person_ids["email"][1:])
        got.withdrawn = sum(1 for profile in found.values() if not profile.has_consent("email"))
        self.preferences = got

    def _post_one_click(self, paths: list[str]) -> None:
        """A mail client's one-click unsubscribe (RFC 8058) to each preference link, one request each."""
        body, headers = ONE_CLICK_BODY, {"content-type": "application/x-www-form-urlencoded"}
        for n, path in enumerate(paths, 1):
            response = self.rt.http("POST", path, body, headers)
            if response.status != 200:
                raise RuntimeError(f"one-click unsubscribe: {response.status} {response.body[:300]!r}")
            self.counter.add(
                "apigateway.HttpApiRequest", {"http_api_requests": cost_model.http_request_units(path, body, headers)}
            )
            if n % RECEIPTS_PER_POST == 0:
                self.rt.drain()
        self.rt.drain()

    def _sms_receipts(self) -> _Posting:
        """Alibaba Cloud's delivery reports of everything sent (1 in 20 of the step's a failure)."""
        index = {_address("sms", i)["value"]: i for i in range(self.messages + 1)}
        failed = [phone for phone, i in index.items() if _fails(i)]
        reports = self.aliyun.receipts(failed_phones=failed, err_code="MK:0001")
        return (
            len(failed),
            lambda: self._post_sms([r for r in reports if index[r["phone_number"]] == 0]),
            lambda: self._post_sms([r for r in reports if index[r["phone_number"]] != 0]),
        )

    def _wechat_receipts(self) -> _Posting:
        """The TEMPLATESENDJOBFINISH push of each template message sent (1 in 20 of the step's blocked)."""
        index = {_address("wechat", i)["value"]: i for i in range(self.messages + 1)}
        pushes: list[tuple[int, bytes]] = []
        for message in self.wechat.sent:
            i = index[message.openid]
            status = "failed:user block" if _fails(i) else "success"
            pushes.append((i, self.wechat.template_job_finish(OA, message.msgid, status)))
        return (
            sum(1 for i, _ in pushes if _fails(i)),
            lambda: self._post_wechat([body for i, body in pushes if i == 0]),
            lambda: self._post_wechat([body for i, body in pushes if i != 0]),
        )

    def _ses_receipts(self, log: Any) -> _Posting:
        """SES's "Email Delivered" (1 in 20 of the step's "Email Bounced", permanent) of each e-mail, as the
        configuration set's event destination puts them on the account's default bus (moto's SES emits none)."""
        from cdp.channels.models import message_id_for

        events: list[tuple[int, dict[str, Any]]] = []
        for warm, persons in ((True, self.person_ids["email"][:1]), (False, self.person_ids["email"][1:])):
            campaign_id = campaign_of("email", warm)
            ids = {message_id_for(campaign_id, STEP, p): i for i, p in enumerate(persons, 0 if warm else 1)}
            for message_id, message in log.get_many(list(ids)).items():
                i = ids[message_id]
                events.append((i, _ses_event(message, _address("email", i)["value"], bounced=_fails(i))))
        return (
            sum(1 for i, _ in events if _fails(i)),
            lambda: self._post_ses([e for i, e in events if i == 0]),
            lambda: self._post_ses([e for i, e in events if i != 0]),
        )

    def _post_ses(self, entries: list[dict[str, Any]]) -> None:
        """Put by SES itself, not by us: through a client the counter does not see (AWS services' events on the
        default bus are free); their delivery to the queue and what follows is billed."""
        import boto3

        from cdp_local.runtime.environment import REGION

        events = boto3.session.Session().client("events", region_name=REGION)
        for start in range(0, len(entries), 10):
            answer = events.put_events(Entries=entries[start : start + 10])
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"SES events not put: {answer}")
        self.rt.drain()

    def _post_sms(self, reports: list[dict[str, Any]]) -> None:
        """Alibaba Cloud's delivery reports, relayed signed to the SMS feedback connector."""
        from cdp.ingest.security import sign_cdp

        for chunk in batches(reports, RECEIPTS_PER_POST):
            body = json.dumps(chunk, ensure_ascii=False).encode()
            signature = sign_cdp(SMS_RELAY_SECRET, body, int(time.time()))
            headers = {"content-type": "application/json", "x-cdp-signature": signature}
            response = self.rt.http("POST", "/v1/feedback/sms/aliyun", body, headers)
            if response.status != 202:
                raise RuntimeError(f"SMS receipts: {response.status} {response.body[:300]!r}")
            self.counter.add(
                "apigateway.HttpApiRequest",
                {"http_api_requests": cost_model.http_request_units("/v1/feedback/sms/aliyun", body, headers)},
            )
        self.rt.drain()

    def _post_wechat(self, pushes: list[bytes]) -> None:
        """TEMPLATESENDJOBFINISH pushes as WeChat posts them to the official account's callback (one each)."""
        from cdp.connectors.wechat import oa_signature

        for n, body in enumerate(pushes, 1):
            timestamp, nonce = str(int(time.time())), str(next(self._nonces))
            query = {"signature": oa_signature(OA_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
            path = f"/v1/wechat/{OA}?{urlencode(query)}"
            headers = {"content-type": "text/xml"}
            response = self.rt.http("POST", path, body, headers)
            if response.status != 200 or response.body != b"success":
                raise RuntimeError(f"WeChat push: {response.status} {response.body[:300]!r}")
            self.counter.add(
                "apigateway.HttpApiRequest", {"http_api_requests": cost_model.http_request_units(path, body, headers)}
            )
            if n % RECEIPTS_PER_POST == 0:
                self.rt.drain()
        self.rt.drain()


RECEIPTS_HOW = {
    "sms": "Alibaba Cloud's reports in batches of 100 to /v1/feedback/sms/aliyun",
    "wechat": "WeChat's TEMPLATESENDJOBFINISH pushes, one request each to /v1/wechat/{app}",
    "email": "SES events on the default bus (rule cdp-delivery-events)",
}
PROVIDER_SERVICES = ("sesv2",)  # the provider's own call when the provider is AWS: billed by it per message
_ITEMS = {  # wru_by_item's kinds (the sort key's prefix) as the send path's items
    "SEND": "ledger",
    "CONTACT": "contact_history",
    "MESSAGE": "message_log",  # the message, and a WeChat message's pointer from its msgid
    "MSGSTATS": "run_counts",
    "RATE": "rate_limiter",
    "LINK": "short_links",
    "M": "profile_message",
}


def _report(
    messages: int,
    rate: float,
    sent: dict[str, _Sent],
    receipts: dict[str, _Receipts],
    preferences: _PreferenceChanges | None = None,
) -> dict[str, Metric]:
    out: dict[str, Metric] = {
        "channels.rate_per_second": {"value": rate, "unit": "messages/s each account may send (rate_per_second)"},
        "channels.messages_per_channel": {"value": messages, "unit": "messages, one campaign step per channel"},
    }
    platform: list[dict[str, OpUsage]] = []
    for ch in CHANNELS:
        usage = {op: u for op, u in sent[ch].usage.items() if op.split(".", 1)[0] not in PROVIDER_SERVICES}
        platform.append(usage)
        out |= _send_metrics(f"channels.{ch}", sent[ch], usage, messages, rate)
    everything = merge_usage(*platform)
    n_sends = messages * len(CHANNELS)
    out |= _priced("channels", "send", everything, n_sends, f"the send path's AWS calls, {', '.join(CHANNELS)} alike")
    out |= _by_service("channels.cost_per_1m_sends", everything, n_sends)
    for op, usage in sorted(everything.items()):
        if usage.calls and is_sdk_call(op):
            out[f"channels.calls_per_send.{op}"] = {"value": round(usage.calls / n_sends, 3), "unit": "calls"}
    if receipts:
        out |= _receipt_metrics(messages, receipts)
    if preferences is not None:
        out |= _preference_metrics(messages, preferences)
    return out


def _send_metrics(
    prefix: str, batch: _Sent, usage: dict[str, OpUsage], messages: int, rate: float
) -> dict[str, Metric]:
    from cdp import topology

    most, sliding, seconds = rate_windows(batch.arrivals)
    out: dict[str, Metric] = {
        f"{prefix}.messages_per_s": {
            "value": round(messages / batch.seconds, 1),
            "unit": f"messages/s (wall clock of the send function at {rate:g}/s)",
        },
        f"{prefix}.max_per_second": {"value": most, "unit": "messages the provider got in one second of the clock"},
        f"{prefix}.rate_held": {
            "value": int(most <= rate),
            "unit": f"1: no second of the clock above {rate:g} at the provider (a place taken at a window's very end "
            "may arrive in the next second)",
        },
        f"{prefix}.limiter_max_per_window": {
            "value": max(batch.places.values(), default=0),
            "unit": "places the rate limiter's counter gave out in one window (its conditional writes)",
        },
        f"{prefix}.max_in_sliding_second": {
            "value": sliding,
            "unit": "messages in any one-second span (fixed windows allow up to 2x across a boundary)",
        },
        f"{prefix}.seconds_used": {"value": seconds, "unit": "seconds of the clock holding a message"},
        f"{prefix}.modelled_aws_messages_per_s": {
            "value": round(messages / max(batch.send_ms / 1000, 1e-9), 1),
            "unit": "messages/s of one send invocation on AWS by its modelled call latencies (the provider's "
            "answer time not included)",
        },
    }
    out |= _priced(prefix, "send", usage, messages, "the send path's AWS calls, not the provider's own")
    runs = {run_of(campaign_of(ch)) for ch in CHANNELS}
    by_item: Counter[str] = Counter()
    for kind, wru in batch.wru_by_item.items():
        label = _item_kind(kind, runs)
        by_item[_ITEMS.get(label, label)] += wru
    for item, wru in sorted(by_item.items()):
        out[f"{prefix}.wru_per_send_by_item.{item}"] = {"value": round(wru / messages, 3), "unit": "wru"}
    provider_calls = sum(u.calls for op, u in batch.usage.items() if op.split(".", 1)[0] in PROVIDER_SERVICES)
    if provider_calls:
        out[f"{prefix}.provider_aws_calls_per_send"] = {
            "value": round(provider_calls / messages, 3),
            "unit": "SES SendEmail: SES bills USD 0.10 per 1,000 e-mails (not in the cost, like the SMS fee)",
        }
    # On AWS a batch lasts at least its messages over the rate: the Lambda time beyond its own work is waiting
    waiting_s = max(0.0, messages / rate - batch.send_ms / 1000)
    gb_seconds = waiting_s * topology.SEND.memory_mb / 1024
    out[f"{prefix}.rate_wait_cost_per_1m_sends_usd"] = {
        "value": round(gb_seconds * cost_model.LAMBDA_GB_SECOND * 1_000_000 / messages, 3),
        "unit": f"USD: the send function waiting for the rate's windows at {rate:g}/s (not in cost_per_1m_sends)",
    }
    return out


def _receipt_metrics(messages: int, receipts: dict[str, _Receipts]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    by_function: dict[str, list[dict[str, OpUsage]]] = defaultdict(list)
    for ch, got in receipts.items():
        prefix = f"channels.{ch}"
        how = RECEIPTS_HOW[ch]
        out[f"{prefix}.receipts"] = {"value": got.posted, "unit": f"receipts ({how}), {got.failures} failures"}
        note = "from the provider's receipt to the message log, and what the receipt events wake"
        out |= _priced(prefix, "receipt", got.usage, got.posted, note)
        moved = sum(got.counts.get(status, 0) for status in ("delivered", "failed", "bounced"))
        out[f"{prefix}.receipts_moved"] = {
            "value": moved,
            "unit": f"of the step's {messages} messages, moved by their receipts (the run's counts)",
        }
        for status in ("delivered", "failed", "bounced", "sent"):
            out[f"{prefix}.after_receipts.{status}"] = {
                "value": got.counts.get(status, 0),
                "unit": f"messages of the step's {messages} (the run's counts in the message log)",
            }
        for fn, ops in got.by_function.items():
            by_function[fn].append(ops)
            out |= _function_cost(f"{prefix}.cost_per_1m_receipts.by_function.{fn}.usd", ops, got.posted, "receipts")
    n_receipts = sum(got.posted for got in receipts.values())
    merged = merge_usage(*(got.usage for got in receipts.values()))
    note = f"{', '.join(receipts)} receipts alike: from the provider's receipt to the message log, and what they wake"
    out |= _priced("channels", "receipt", merged, n_receipts, note)
    out |= _by_service("channels.cost_per_1m_receipts", merged, n_receipts)
    for fn, parts in sorted(by_function.items()):
        out |= _function_cost(
            f"channels.cost_per_1m_receipts.by_function.{fn}.usd", merge_usage(*parts), n_receipts, "receipts"
        )
    return out


def _preference_metrics(messages: int, got: _PreferenceChanges) -> dict[str, Metric]:
    n = got.posted
    out: dict[str, Metric] = {
        "channels.email.preference_changes": {
            "value": n,
            "unit": "one-click unsubscribes (RFC 8058), one request each to the e-mail's List-Unsubscribe URL",
        }
    }
    note = "a one-click unsubscribe: the HTTP API, the preference centre, and what its consent_changed event wakes"
    out |= _priced("channels", "preference_change", got.usage, n, note)
    out |= _by_service("channels.cost_per_1m_preference_changes", got.usage, n)
    for op, usage in sorted(got.usage.items()):
        if usage.calls and is_sdk_call(op):
            out[f"channels.calls_per_preference_change.{op}"] = {"value": round(usage.calls / n, 3), "unit": "calls"}
    for fn, ops in sorted(got.by_function.items()):
        out |= _function_cost(
            f"channels.cost_per_1m_preference_changes.by_function.{fn}.usd", ops, n, "preference changes"
        )
    for status in ("unsubscribed", "delivered", "bounced", "sent"):
        out[f"channels.email.after_preference_changes.{status}"] = {
            "value": got.counts.get(status, 0),
            "unit": f"e-mails of the step's {messages} (the run's counts in the message log)",
        }
    out["channels.email.email_consent_withdrawn"] = {
        "value": got.withdrawn,
        "unit": f"of the step's {messages} persons, whose e-mail marketing consent the profile now shows withdrawn",
    }
    return out


def _function_cost(name: str, usage: dict[str, OpUsage], n: int, per: str) -> dict[str, Metric]:
    usd = usage_usd(usage)
    return {name: {"value": round(usd * 1_000_000 / n, 3), "unit": f"USD per 1M {per}"}} if usd > 0 else {}
