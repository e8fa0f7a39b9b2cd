"""The demo brand's message providers: its SMS through Alibaba Cloud SMS (the loopback fake speaking SendSms, every
SMS template registered with it), its e-mail through SES v2 with a configuration set (moto; the local runtime
publishes SES's delivery events). What a brand configures under `senders` in the sources secret.

The provider's delivery reports come back as Alibaba Cloud sends them (`receipts`: a few numbers fail, as in life) to
the SMS feedback connector; the report reads each message's status from the message log.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import time
from types import TracebackType
from typing import Any

from cdp import topology
from cdp.channels.messages import DynamoMessageLog
from cdp.ingest.security import sign_cdp
from cdp_local.demo.api import DemoFailed
from cdp_local.fakes.aliyun_sms import FakeAliyunSms
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import LOCAL_EMAIL_FROM

SIGN_NAME = "示例烘焙"
SMS_RELAY_SECRET = "local-sms-secret"  # noqa: S105 - the local `aliyun` receipts relay of demo-brand (LOCAL_SOURCES)
EMAIL_CONFIGURATION_SET = "cdp-demo-messages"
UNDELIVERABLE_SHARE = 0.03  # numbers the carriers report as not delivered (switched off, out of service)
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
        self._posted = 0

    def __enter__(self) -> DemoSenders:
        self.sms.start()
        self.rt.client("sesv2").create_email_identity(EmailIdentity=LOCAL_EMAIL_FROM)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sms.stop()

    def senders(self) -> dict[str, Any]:
        """The brand's `senders` entry of the sources secret."""
        email = {"from_address": LOCAL_EMAIL_FROM, "configuration_set": EMAIL_CONFIGURATION_SET}
        return {self.brand_id: {"sms": {"default": self.sms.account(rate_per_second=500)}, "email": email}}

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

    def post_receipts(self, seed: int) -> dict[str, int]:
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
