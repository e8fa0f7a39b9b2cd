"""A fake WeChat API (api.weixin.qq.com) on the loopback, speaking the protocols `cdp.channels.wechat` sends with:
the stable access token, an official account's template messages and a mini-program's subscribe messages.

`POST /cgi-bin/stable_token` checks the app id (40013) and its AppSecret (40125) and answers `{access_token,
expires_in}`: in normal mode the token already issued while it has more than 5 minutes left (WeChat's own rule),
else a new one; with `force_refresh` a new one, the previous becoming "not latest" (40001). Tokens live
`token_ttl_s`; `expire_tokens()` makes every token issued so far answer 42001 (expired), an unknown one answers
40014. `token_fetches` counts the fetches.

`POST /cgi-bin/message/template/send?access_token=..` (official accounts) and `/cgi-bin/message/subscribe/send`
(mini-programs) check the template (`add_template`: unknown 40037, data keys missing or extra or an empty value
47003) and the person: an OpenID the app never saw is 40003; an official account sends to its followers only
(`follow`, else 43004); a mini-program to a person with a subscription to that template left (`grant_subscription`,
each send uses one, else 43101). A template message's `client_msg_id` seen before for the same OpenID answers the
first message's msgid and sends nothing. `quota_next(times)` spends the day's quota (45009) for the next sends;
the base class's `fail_next` and `delay_next` script HTTP failures and late answers. Every message sent is in
`sent`; `template_job_finish(app_id, msgid)` is the TEMPLATESENDJOBFINISH push WeChat then posts to the account.

A mini-program's message push (消息推送), in the format its console picked (`fmt`: "xml" or "json"; JSON's `List` is
an object for one entry and an array for more, as WeChat sends it): `subscribe_popup(app_id, openid, {template:
"accept" | "reject"})` is the person answering the subscribe prompt (each accept grants one send, as
`grant_subscription`) and its `subscribe_msg_popup_event`; `subscribe_settings_reject(app_id, openid, templates)`
the person refusing templates in the settings (their subscriptions gone) and its `subscribe_msg_change_event`;
`subscribe_msg_sent(app_id, msgid)` the `subscribe_msg_sent_event` WeChat posts once it delivered (ErrorCode 0) or
failed a subscribe message. Each push is the body only: the caller signs the URL with the app's token.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from cdp.shared.http import HttpAnswer
from cdp_local.fakes.server import LoopbackFake

TOKEN_PATH = "/cgi-bin/stable_token"  # noqa: S105 - a path, not a secret
TEMPLATE_PATH = "/cgi-bin/message/template/send"
SUBSCRIBE_PATH = "/cgi-bin/message/subscribe/send"
NORMAL_MODE_ROLLOVER_S = 300  # normal mode hands out a new token in the last 5 minutes of the old one
FIRST_MSGID = 2894757127459356673
JOB_STATUSES = ("success", "failed:user block", "failed: system failed")
MINIPROGRAM_STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")
ERRMSG = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    43002: "require POST method",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
}

AppKind = Literal["official_account", "mini_program"]
PushFormat = Literal["xml", "json"]  # a mini-program's message push format, as picked in its console


@dataclass
class SentMessage:
    app_id: str
    kind: AppKind
    openid: str
    template_id: str
    data: dict[str, str]
    msgid: int
    url: str | None = None
    page: str | None = None  # the subscribe message's page, or the template message's miniprogram.pagepath
    miniprogram_appid: str | None = None
    client_msg_id: str | None = None
    miniprogram_state: str | None = None
    lang: str | None = None
    sent_at: float = 0.0


@dataclass
class _Token:
    app_id: str
    expires_at: float
    state: Literal["valid", "superseded", "expired"] = "valid"


@dataclass
class _App:
    secret: str
    kind: AppKind
    current: str | None = None  # the token normal mode hands out
    templates: dict[str, frozenset[str]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)  # OpenIDs the app has seen
    followers: set[str] = field(default_factory=set)
    subscriptions: dict[tuple[str, str], int] = field(default_factory=dict)  # (openid, template) -> sends left
    client_msg_ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (openid, client_msg_id) -> msgid


class FakeWeChatApi(LoopbackFake):
    name = "fake-wechat-api"

    def __init__(self, port: int = 0, token_ttl_s: int = 7200, clock: Callable[[], float] = time.time) -> None:
        super().__init__(port)
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self._apps: dict[str, _App] = {}
        self._tokens: dict[str, _Token] = {}
        self._sent: list[SentMessage] = []
        self._fetches: list[tuple[str, bool]] = []  # (app id, forced)
        self._quota_refusals = 0
        self._msgids = itertools.count(FIRST_MSGID)
        # the base class's lock guards its script; this one the API's state (requests are served on many threads)
        self._state_lock = threading.Lock()

    # ---- what a test tells it --------------------------------------------------------------------------------

    def add_app(self, app_id: str, secret: str, kind: AppKind) -> None:
        with self._state_lock:
            self._apps[app_id] = _App(secret=secret, kind=kind)

    def add_template(self, app_id: str, template_id: str, fields: Iterable[str]) -> None:
        with self._state_lock:
            self._app(app_id).templates[template_id] = frozenset(fields)

    def add_user(self, app_id: str, openid: str) -> None:
        """An OpenID the app knows (an official account's former follower, a mini-program's user)."""
        with self._state_lock:
            self._app(app_id).users.add(openid)

    def follow(self, app_id: str, openid: str) -> None:
        with self._state_lock:
            app = self._app(app_id)
            app.users.add(openid)
            app.followers.add(openid)

    def unfollow(self, app_id: str, openid: str) -> None:
        with self._state_lock:
            self._app(app_id).followers.discard(openid)

    def grant_subscription(self, app_id: str, openid: str, template_id: str, times: int = 1) -> None:
        """The person accepted the mini-program's subscribe prompt for `template_id` (`times` times)."""
        with self._state_lock:
            app = self._app(app_id)
            app.users.add(openid)
            app.subscriptions[(openid, template_id)] = app.subscriptions.get((openid, template_id), 0) + times

    def subscriptions_left(self, app_id: str, openid: str, template_id: str) -> int:
        with self._state_lock:
            return self._app(app_id).subscriptions.get((openid, template_id), 0)

    def expire_tokens(self) -> None:
        """Every token issued so far answers 42001 (access_token expired) from now on."""
        with self._state_lock:
            for token in self._tokens.values():
                token.state = "expired"

    def quota_next(self, times: int = 1) -> None:
        """The next `times` message sends answer 45009 (the day's quota spent)."""
        with self._state_lock:
            self._quota_refusals += times

    def senders(self, *app_ids: str, **changes: Any) -> dict[str, Any]:
        """A `WeChatSenders` document pointing at this fake."""
        with self._state_lock:
            apps = list(app_ids or self._apps)
        return {"apps": apps, "endpoint": self.url, **changes}

    # ---- what a test reads -----------------------------------------------------------------------------------

    @property
    def sent(self) -> list[SentMessage]:
        with self._state_lock:
            return list(self._sent)

    @property
    def token_fetches(self) -> int:
        with self._state_lock:
            return len(self._fetches)

    @property
    def forced_fetches(self) -> int:
        with self._state_lock:
            return sum(1 for _, forced in self._fetches if forced)

    def template_job_finish(self, app_id: str, msgid: int | str, status: str = "success") -> bytes:
        """The XML push an official account receives once WeChat delivered (or failed) the template message."""
        if status not in JOB_STATUSES:
            raise ValueError(f"status must be one of {JOB_STATUSES}")
        with self._state_lock:
            found = [m for m in self._sent if m.app_id == app_id and str(m.msgid) == str(msgid)]
            if not found or found[0].kind != "official_account":
                raise KeyError(f"no template message {msgid} was sent by official account {app_id}")
            message = found[0]
            created = int(self._clock())
        fields = {
            "ToUserName": original_id(app_id),
            "FromUserName": message.openid,
            "CreateTime": str(created),
            "MsgType": "event",
            "Event": "TEMPLATESENDJOBFINISH",
            "MsgID": str(message.msgid),
            "Status": status,
        }
        numeric = {"CreateTime", "MsgID"}
        lines = [
            f"<{k}>{escape(v)}</{k}>" if k in numeric else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
        ]
        return ("<xml>\n  " + "\n  ".join(lines) + "\n</xml>\n").encode()

    # ---- a mini-program's message push ----------------------------------------------------------------------

    def subscribe_popup(
        self, app_id: str, openid: str, decisions: Mapping[str, str], scene: str = "0", fmt: PushFormat = "xml"
    ) -> bytes:
        """The person answered the subscribe prompt (`decisions`: template id -> accept / reject): each accepted
        template gets one send, and the push is the `subscribe_msg_popup_event` WeChat posts to the app."""
        _check_format(fmt)
        if not decisions or any(d not in ("accept", "reject") for d in decisions.values()):
            raise ValueError("decisions: template id -> 'accept' or 'reject', at least one")
        with self._state_lock:
            app = self._mini_program(app_id)
            unknown = sorted(set(decisions) - app.templates.keys())
            if unknown:
                raise KeyError(f"add_template({app_id!r}, {unknown[0]!r}, ...) first")
            app.users.add(openid)
            for template_id, decision in decisions.items():
                if decision == "accept":
                    app.subscriptions[(openid, template_id)] = app.subscriptions.get((openid, template_id), 0) + 1
            created = int(self._clock())
        entries = [{"TemplateId": t, "SubscribeStatusString": d, "PopupScene": scene} for t, d in decisions.items()]
        return _push(app_id, openid, created, "subscribe_msg_popup_event", entries, fmt)

    def subscribe_settings_reject(
        self, app_id: str, openid: str, template_ids: Iterable[str], fmt: PushFormat = "xml"
    ) -> bytes:
        """The person set these templates to "reject" in the app's settings (the only change WeChat pushes): their
        subscriptions are gone, and the push is the `subscribe_msg_change_event`."""
        _check_format(fmt)
        templates = list(template_ids)
        if not templates:
            raise ValueError("name at least one template")
        with self._state_lock:
            app = self._mini_program(app_id)
            for template_id in templates:
                app.subscriptions.pop((openid, template_id), None)
            created = int(self._clock())
        entries = [{"TemplateId": t, "SubscribeStatusString": "reject"} for t in templates]
        return _push(app_id, openid, created, "subscribe_msg_change_event", entries, fmt)

    def subscribe_msg_sent(
        self,
        app_id: str,
        msgid: int | str,
        error_code: int = 0,
        error_status: str = "success",
        fmt: PushFormat = "xml",
    ) -> bytes:
        """The `subscribe_msg_sent_event` WeChat posts once it delivered (ErrorCode 0) or failed the subscribe
        message `msgid` (the one `subscribe/send` answered)."""
        _check_format(fmt)
        with self._state_lock:
            found = [m for m in self._sent if m.app_id == app_id and str(m.msgid) == str(msgid)]
            if not found or found[0].kind != "mini_program":
                raise KeyError(f"no subscribe message {msgid} was sent by mini-program {app_id}")
            message = found[0]
            created = int(self._clock())
        entry = {
            "TemplateId": message.template_id,
            "MsgID": str(message.msgid),
            "ErrorCode": str(error_code),
            "ErrorStatus": error_status,
        }
        return _push(app_id, message.openid, created, "subscribe_msg_sent_event", [entry], fmt)

    def _mini_program(self, app_id: str) -> _App:
        app = self._app(app_id)
        if app.kind != "mini_program":
            raise KeyError(f"{app_id} is not a mini-program")
        return app

    # ---- the API ---------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        parts = urlsplit(path)
        if parts.path not in (TOKEN_PATH, TEMPLATE_PATH, SUBSCRIBE_PATH):
            return HttpAnswer(404, b"<html><body>404 Not Found</body></html>", {"content-type": "text/html"})
        if method != "POST":
            return _json(_error(43002))
        if not body:
            return _json(_error(44002))
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _json(_error(47001))
        if not isinstance(payload, dict):
            return _json(_error(47001))
        with self._state_lock:
            if parts.path == TOKEN_PATH:
                return _json(self._stable_token(payload))
            token = parse_qs(parts.query).get("access_token", [""])[0]
            return _json(self._send(parts.path, token, payload))

    def _stable_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("grant_type") != "client_credential":
            return _error(40002)
        app_id, app = payload.get("appid"), self._apps.get(str(payload.get("appid")))
        if not isinstance(app_id, str) or app is None:
            return _error(40013)
        if not isinstance(payload.get("secret"), str) or not secrets.compare_digest(payload["secret"], app.secret):
            return _error(40125)
        forced = payload.get("force_refresh") is True
        self._fetches.append((app_id, forced))
        now = self._clock()
        current = self._tokens.get(app.current or "")
        if forced or current is None or current.state != "valid" or current.expires_at - now <= NORMAL_MODE_ROLLOVER_S:
            if forced and current is not None and current.state == "valid":
                current.state = "superseded"
            token = secrets.token_urlsafe(48)
            self._tokens[token] = _Token(app_id, now + self.token_ttl_s)
            app.current, current = token, self._tokens[token]
        return {"access_token": app.current, "expires_in": max(int(current.expires_at - now), 1)}

    def _token_error(self, token: str) -> tuple[int, str | None]:
        """(errcode, app id): 0 and the app for a token that sends."""
        if not token:
            return 41001, None
        issued = self._tokens.get(token)
        if issued is None:
            return 40014, None
        if issued.state == "expired" or issued.expires_at <= self._clock():
            return 42001, None
        if issued.state == "superseded":
            return 40001, None
        return 0, issued.app_id

    def _send(self, path: str, token: str, payload: dict[str, Any]) -> dict[str, Any]:
        errcode, app_id = self._token_error(token)
        if errcode or app_id is None:
            return _error(errcode)
        app = self._apps[app_id]
        wanted: AppKind = "official_account" if path == TEMPLATE_PATH else "mini_program"
        if app.kind != wanted:
            return _error(48001)
        openid, template_id = payload.get("touser"), payload.get("template_id")
        client_msg_id = payload.get("client_msg_id") if wanted == "official_account" else None
        if isinstance(openid, str) and isinstance(client_msg_id, str) and (openid, client_msg_id) in app.client_msg_ids:
            return {"errcode": 0, "errmsg": "ok", "msgid": app.client_msg_ids[(openid, client_msg_id)]}
        if self._quota_refusals > 0:
            self._quota_refusals -= 1
            return _error(45009)
        if not isinstance(openid, str) or openid not in app.users:
            return _error(40003)
        if not isinstance(template_id, str) or template_id not in app.templates:
            return _error(40037)
        data, problem = _data(payload.get("data"), app.templates[template_id])
        if problem:
            return _error(47003, problem)
        message = SentMessage(app_id=app_id, kind=app.kind, openid=openid, template_id=template_id, data=data, msgid=0)
        refusal = self._check_jump(app, openid, template_id, payload, message)
        if refusal:
            return refusal
        message.msgid = next(self._msgids)
        message.sent_at = self._clock()
        if isinstance(client_msg_id, str) and client_msg_id:
            message.client_msg_id = client_msg_id
            app.client_msg_ids[(openid, client_msg_id)] = message.msgid
        if app.kind == "mini_program":
            app.subscriptions[(openid, template_id)] -= 1
        self._sent.append(message)
        return {"errcode": 0, "errmsg": "ok", "msgid": message.msgid}

    def _check_jump(
        self, app: _App, openid: str, template_id: str, payload: dict[str, Any], message: SentMessage
    ) -> dict[str, Any] | None:
        """The person may receive it, and the message's link fields are well formed (filled into `message`)."""
        if app.kind == "official_account":
            if openid not in app.followers:
                return _error(43004)
            url, mini = payload.get("url"), payload.get("miniprogram")
            if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                return _error(47003, "url invalid")
            if mini is not None:
                if not isinstance(mini, dict) or not isinstance(mini.get("appid"), str):
                    return _error(47003, "miniprogram.appid invalid")
                message.miniprogram_appid = mini["appid"]
                message.page = mini.get("pagepath") if isinstance(mini.get("pagepath"), str) else None
            message.url = url
            return None
        state, lang, page = (
            payload.get("miniprogram_state", "formal"),
            payload.get("lang", "zh_CN"),
            payload.get("page"),
        )
        if state not in MINIPROGRAM_STATES:
            return _error(47003, "miniprogram_state invalid")
        if lang not in LANGS:
            return _error(47003, "lang invalid")
        if page is not None and not isinstance(page, str):
            return _error(47003, "page invalid")
        if app.subscriptions.get((openid, template_id), 0) <= 0:
            return _error(43101)
        message.miniprogram_state, message.lang, message.page = state, lang, page
        return None

    def _app(self, app_id: str) -> _App:
        if app_id not in self._apps:
            raise KeyError(f"add_app({app_id!r}, ...) first")
        return self._apps[app_id]


_LIST_ELEMENTS = {
    "subscribe_msg_popup_event": "SubscribeMsgPopupEvent",
    "subscribe_msg_change_event": "SubscribeMsgChangeEvent",
    "subscribe_msg_sent_event": "SubscribeMsgSentEvent",
}
_NUMERIC = {"CreateTime", "MsgID", "ErrorCode", "PopupScene"}  # WeChat's XML leaves numbers bare, text in CDATA


def _check_format(fmt: str) -> None:
    if fmt not in ("xml", "json"):
        raise ValueError("fmt must be 'xml' or 'json'")


def _push(app_id: str, openid: str, created: int, event: str, entries: list[dict[str, str]], fmt: PushFormat) -> bytes:
    """A subscribe-message event push as WeChat posts it to the mini-program, in XML or JSON."""
    head = {
        "ToUserName": original_id(app_id),
        "FromUserName": openid,
        "CreateTime": str(created),
        "MsgType": "event",
        "Event": event,
    }
    if fmt == "json":  # one entry: the object itself; more: an array (WeChat's docs)
        document: dict[str, Any] = {**head, "List": entries[0] if len(entries) == 1 else entries}
        return json.dumps(document, ensure_ascii=False).encode()

    def element(name: str, value: str, indent: str) -> str:
        text = escape(value) if name in _NUMERIC else f"<![CDATA[{value}]]>"
        return f"{indent}<{name}>{text}</{name}>"

    lines = ["<xml>", *(element(k, v, "  ") for k, v in head.items()), f"  <{_LIST_ELEMENTS[event]}>"]
    for entry in entries:
        lines += ["    <List>", *(element(k, v, "      ") for k, v in entry.items()), "    </List>"]
    lines += [f"  </{_LIST_ELEMENTS[event]}>", "</xml>", ""]
    return "\n".join(lines).encode()


def original_id(app_id: str) -> str:
    """The official account's original id (gh_...), the ToUserName of its pushes: derived from the app id here."""
    return "gh_" + hashlib.sha256(app_id.encode()).hexdigest()[:12]


def _data(value: Any, fields: frozenset[str]) -> tuple[dict[str, str], str | None]:
    if not isinstance(value, dict):
        return {}, "data invalid"
    missing, extra = sorted(fields - value.keys()), sorted(value.keys() - fields)
    if missing:
        return {}, f"data.{missing[0]}.value is empty"
    if extra:
        return {}, f"data.{extra[0]} is not a field of the template"
    data: dict[str, str] = {}
    for key, item in value.items():
        text = item.get("value") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text:
            return {}, f"data.{key}.value invalid"
        data[key] = text
    return data, None


def _error(errcode: int, detail: str | None = None) -> dict[str, Any]:
    rid = secrets.token_hex(4)
    errmsg = ERRMSG.get(errcode, "error")
    return {"errcode": errcode, "errmsg": f"{errmsg}{' ' + detail if detail else ''} rid: {rid}"}


def _json(document: Mapping[str, Any]) -> HttpAnswer:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return HttpAnswer(200, body, {"content-type": "application/json; encoding=utf-8"})
