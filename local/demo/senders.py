"""The demo brand's message providers, what a brand configures under `senders` in the sources secret: SMS through
Alibaba Cloud SMS (the loopback fake speaking SendSms, every SMS template registered with it), e-mail through SES v2
with a configuration set (moto; the local runtime publishes SES's delivery events), WeChat template messages from the
official account (the loopback fake WeChat API: its followers and the birthday template known to it), app push
through SNS mobile push (moto, an FCM platform application), and the store's clienteling app as a signed webhook (the
loopback fake receiver). In-app messages need no provider: they land in the person's inbox.

The receipts come back as each provider sends them: Alibaba Cloud's delivery reports (a few numbers fail, as in life)
to the SMS feedback connector, WeChat's TEMPLATESENDJOBFINISH pushes to the official account's URL, the app's push
receipts (received, and opened by some) to the push feedback connector. The report reads each message's status from
the message log.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import boto3

from cdp import topology
from cdp.channels.messages import DynamoMessageLog
from cdp.connectors.wechat import oa_signature
from cdp.ingest.security import sign_cdp
from cdp.profile.dynamodb import DynamoProfileStore
from cdp_local.demo.api import DemoFailed
from cdp_local.demo.channels import DEMO_WECHAT_APPS, OFFICIAL_ACCOUNT_APP
from cdp_local.demo.journeys import WECHAT_TEMPLATES
from cdp_local.fakes.aliyun_sms import FakeAliyunSms
from cdp_local.fakes.webhook_receiver import FakeWebhookReceiver
from cdp_local.fakes.wechat_api import FakeWeChatApi
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import LOCAL_EMAIL_FROM, LOCAL_SOURCES

SIGN_NAME = "示例烘焙"
SMS_RELAY_SECRET = "local-sms-secret"  # noqa: S105 - the local `aliyun` receipts relay of demo-brand (LOCAL_SOURCES)
EMAIL_CONFIGURATION_SET = "cdp-demo-messages"
UNDELIVERABLE_SHARE = 0.03  # numbers the carriers report as not delivered (switched off, out of service)
WECHAT_BLOCKED_SHARE = 0.02  # followers who blocked the account's template messages ("failed:user block")
PUSH_OPENED_SHARE = 0.3  # pushes the person taps
PUSH_RELAY = "jpush"  # the app's push receipts relay (LOCAL_SOURCES push)
PUSH_RELAY_SECRET = "local-push-secret"  # noqa: S105 - LOCAL_SOURCES' push relay secret (a test holds them equal)
OA_APP_SECRET = "local-demo-oa-app-secret"  # noqa: S105 - the fake WeChat API's secret of the demo's account
RECEIPTS_PER_REQUEST = 1000
_VARIABLE = re.compile(r"\{\{(.*?)\}\}")


def sms_template(body: str) -> tuple[str, dict[str, Any]]:
    """The text a brand registers with Alibaba Cloud for a message body (each `{{ ... }}` a `${vN}` variable) and
    the template part of the send step (the code it was given, each variable a template of ours)."""
    params: dict[str, str] = {}

    def variable(found: re.Match[str]) -> str:
        name = f"v{len(params) + 1}"
        params[name] = "{{" + found.group(1) + "}}"
        return "${" + name + "}"

    text = _VARIABLE.sub(variable, body)
    code = "SMS_" + str(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 10**9).zfill(9)
    return text, {"code": code, "params": params}


class DemoSenders:
    def __init__(self, rt: LocalRuntime, brand_id: str) -> None:
        self.rt = rt
        self.brand_id = brand_id
        self.sms = FakeAliyunSms(sign_name=SIGN_NAME, daily_limit=50)
        self.wechat = FakeWeChatApi()
        self.webhook = FakeWebhookReceiver()
        self.pushes = PushedMessages()
        self._push_application = ""
        self._posted = 0
        self._posted_wechat = 0
        self._posted_push = 0

    def __enter__(self) -> DemoSenders:
        self.sms.start()
        self.wechat.start()
        self.webhook.start()
        self.pushes.start()
        self.wechat.add_app(OFFICIAL_ACCOUNT_APP, OA_APP_SECRET, "official_account")
        for template_id, fields in WECHAT_TEMPLATES.items():
            self.wechat.add_template(OFFICIAL_ACCOUNT_APP, template_id, fields)
        self.rt.client("sesv2").create_email_identity(EmailIdentity=LOCAL_EMAIL_FROM)
        created = self.rt.client("sns").create_platform_application(
            Name="demo-bakery-android", Platform="GCM", Attributes={"PlatformCredential": "local-fcm-service-account"}
        )
        self._push_application = created["PlatformApplicationArn"]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.pushes.stop()
        self.webhook.stop()
        self.wechat.stop()
        self.sms.stop()

    def senders(self) -> dict[str, Any]:
        """The brand's `senders` entry of the sources secret."""
        email = {"from_address": LOCAL_EMAIL_FROM, "configuration_set": EMAIL_CONFIGURATION_SET}
        push = {"platform_applications": {"android": self._push_application}, "default_platform": "android"}
        return {
            self.brand_id: {
                "sms": {"default": self.sms.account(rate_per_second=500)},
                "email": email,
                "wechat": self.wechat.senders(OFFICIAL_ACCOUNT_APP),
                "push": push,
                "webhook": self.webhook.account(),
            }
        }

    def sources(self) -> dict[str, Any]:
        """What the providers add to the sources secret: the `senders`, and the brand's WeChat apps with the official
        account's AppSecret (it sends with it)."""
        official = {**DEMO_WECHAT_APPS[OFFICIAL_ACCOUNT_APP], "app_secret": OA_APP_SECRET}
        local = LOCAL_SOURCES["wechat"]
        assert isinstance(local, dict)
        wechat = {**local, **DEMO_WECHAT_APPS, OFFICIAL_ACCOUNT_APP: official}
        return {"senders": self.senders(), "wechat": wechat}

    def know_followers(self) -> int:
        """The official account's followers as WeChat knows them: every OpenID of the account whose person follows it
        now (the profile's wechat consent, which follow and unfollow pushes keep). Returns how many."""
        store = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=self.rt.client("dynamodb"))
        prefix = f"wechat_openid:{OFFICIAL_ACCOUNT_APP}:"
        followers = 0
        for shard in range(4):
            for profile in store.scan_shard(shard, 4):
                if profile.brand_id != self.brand_id or profile.merged_into or not profile.has_consent("wechat"):
                    continue
                for key in profile.identifiers:
                    if key.startswith(prefix):
                        self.wechat.follow(OFFICIAL_ACCOUNT_APP, key.removeprefix(prefix))
                        followers += 1
        return followers

    def with_sms_templates(self, definition: dict[str, Any]) -> dict[str, Any]:
        """The definition with every SMS send (its steps and its paths') carrying its registered template."""
        out = copy.deepcopy(definition)
        steps = [*out["steps"], *(step for path in out.get("paths", {}).values() for step in path)]
        for step in steps:
            send = step.get("send")
            if send is not None and "sms" in (send["channel"], *send.get("or_channels", [])):
                text, part = sms_template(send["template"]["body"])
                self.sms.register_template(part["code"], text)
                send["template"]["sms"] = part
        return out

    def post_receipts(self, seed: int) -> dict[str, dict[str, int]]:
        """What each provider reports of the messages sent since the last call, posted as it would post it."""
        return {
            "sms": self._sms_receipts(seed),
            "wechat": self._wechat_receipts(seed),
            "push": self._push_receipts(seed),
        }

    def _wechat_receipts(self, seed: int) -> dict[str, int]:
        """WeChat's TEMPLATESENDJOBFINISH push for each template message, to the official account's URL (signed with
        its token, as WeChat signs it)."""
        sent = self.wechat.sent[self._posted_wechat :]
        self._posted_wechat += len(sent)
        rng = random.Random(seed)
        token = str(DEMO_WECHAT_APPS[OFFICIAL_ACCOUNT_APP]["token"])
        blocked = 0
        for message in sent:
            status = "failed:user block" if rng.random() < WECHAT_BLOCKED_SHARE else "success"
            blocked += status != "success"
            xml = self.wechat.template_job_finish(OFFICIAL_ACCOUNT_APP, message.msgid, status)
            timestamp, nonce = str(int(time.time())), str(message.msgid)[-9:]
            query = {
                "signature": oa_signature(token, timestamp, nonce),
                "timestamp": timestamp,
                "nonce": nonce,
                "openid": message.openid,
            }
            path = f"/v1/wechat/{OFFICIAL_ACCOUNT_APP}?{urlencode(query)}"
            response = self.rt.http("POST", path, xml, {"content-type": "text/xml"})
            if response.status != 200:
                raise DemoFailed(f"a WeChat template push was refused: {response.status} {response.body[:300]!r}")
        self.rt.drain()
        return {"reports": len(sent), "blocked": blocked}

    def _push_receipts(self, seed: int) -> dict[str, int]:
        """The app's receipts of each push SNS published: received by the device, opened by some."""
        sent = self.pushes.published[self._posted_push :]
        self._posted_push += len(sent)
        rng = random.Random(seed)
        sns = self.rt.client("sns")
        events: list[dict[str, Any]] = []
        now = int(time.time())
        for push in sent:
            device = sns.get_endpoint_attributes(EndpointArn=push.endpoint_arn)["Attributes"]["Token"]
            item = {"message_id": push.message_id, "campaign_id": push.campaign_id, "device_id": device}
            events.append({**item, "type": "received", "platform": "android", "ts": now})
            if rng.random() < PUSH_OPENED_SHARE:
                events.append({**item, "type": "opened", "platform": "android", "ts": now + 60})
        for start in range(0, len(events), RECEIPTS_PER_REQUEST):
            body = json.dumps({"events": events[start : start + RECEIPTS_PER_REQUEST]}).encode()
            headers = {"content-type": "application/json", "x-cdp-signature": sign_cdp(PUSH_RELAY_SECRET, body, now)}
            response = self.rt.http("POST", f"/v1/feedback/push/{PUSH_RELAY}", body, headers)
            if response.status != 202:
                raise DemoFailed(f"the push receipts were refused: {response.status} {response.body[:300]!r}")
        self.rt.drain()
        return {"reports": len(events), "opened": sum(1 for e in events if e["type"] == "opened")}

    def _sms_receipts(self, seed: int) -> dict[str, int]:
        """The provider's reports of every SMS sent since the last call, posted as Alibaba Cloud's relay would."""
        sent = self.sms.sent[self._posted :]
        self._posted += len(sent)
        rng = random.Random(seed)
        failing = tuple(s.phone for s in sent if rng.random() < UNDELIVERABLE_SHARE)
        reports = self.sms.receipts(failed_phones=failing, err_code="MK:0001")[-len(sent) :] if sent else []
        accepted = 0
        for start in range(0, len(reports), RECEIPTS_PER_REQUEST):
            body = json.dumps(reports[start : start + RECEIPTS_PER_REQUEST], ensure_ascii=False).encode()
            headers = {
                "content-type": "application/json",
                "x-cdp-signature": sign_cdp(SMS_RELAY_SECRET, body, int(time.time())),
            }
            response = self.rt.http("POST", "/v1/feedback/sms/aliyun", body, headers)
            if response.status != 202:
                raise DemoFailed(f"the SMS receipts were refused: {response.status} {response.body[:300]!r}")
            accepted += json.loads(response.body)["accepted"]
        self.rt.drain()
        return {"reports": len(reports), "accepted": accepted, "undeliverable": len(failing)}

    def statuses(self, campaign_ids: list[str]) -> dict[str, dict[str, int]]:
        """Channel -> status -> messages of these campaigns showing it now (every run together)."""
        log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=self.rt.client("dynamodb"))
        totals: dict[str, dict[str, int]] = {}
        for campaign_id in campaign_ids:
            for by_channel in log.counts(self.brand_id, campaign_id).values():
                for channel, by_status in by_channel.items():
                    for status, n in by_status.items():
                        totals.setdefault(channel, {})[status] = totals.get(channel, {}).get(status, 0) + n
        return totals


@dataclass(frozen=True)
class Pushed:
    endpoint_arn: str
    message_id: str
    campaign_id: str | None


class PushedMessages:
    """Every push SNS published to a device endpoint while started (boto3's default session, where the handlers make
    their clients): what the devices received, which the app then reports."""

    def __init__(self) -> None:
        self.published: list[Pushed] = []

    def _after_publish(self, http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        params = kwargs.get("context", {}).get("cdp_push_params") or {}
        target = params.get("TargetArn")
        if not target or "MessageId" not in parsed:
            return
        payload = json.loads(params["Message"])
        native = json.loads(payload.get("GCM") or "{}")
        data = native.get("fcmV1Message", {}).get("message", {}).get("data", {})
        if data.get("message_id"):
            self.published.append(Pushed(target, data["message_id"], data.get("campaign_id")))

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["cdp_push_params"] = dict(params)

    def start(self) -> None:
        session = self._session()
        session.events.register("provide-client-params.sns.Publish", self._keep_params)
        session.events.register("after-call.sns.Publish", self._after_publish)

    def stop(self) -> None:
        session = self._session()
        session.events.unregister("provide-client-params.sns.Publish", self._keep_params)
        session.events.unregister("after-call.sns.Publish", self._after_publish)

    @staticmethod
    def _session() -> boto3.session.Session:
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        return boto3.DEFAULT_SESSION
