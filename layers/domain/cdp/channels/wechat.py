"""WeChat messages: an official account's template messages and a mini-program's subscribe messages.

Both are sent with the app's access token (`POST {endpoint}/cgi-bin/stable_token` with `grant_type`
client_credential, `appid`, `secret` and `force_refresh`: `{access_token, expires_in}`), shared by every sender
through `AccessTokens` (`cdp.channels.wechat_tokens`): fetched in normal mode when none is stored (WeChat then answers
the token it already issued), forced (`force_refresh: true`, which invalidates the old token for every holder and
WeChat allows 20 times a day) only after WeChat refused the stored one, and not even then when another container
has stored a successor meanwhile.

- official account: `POST /cgi-bin/message/template/send?access_token=..` with `touser`, `template_id`, `data`
  (`{field: {"value": ..}}`), `client_msg_id` = the message id (WeChat sends one message per OpenID and id within
  10 minutes, so a retry after a lost answer does not reach the person twice) and the link: a web page as `url`, a
  mini-program page as `miniprogram: {appid, pagepath}` when the mini-program bound to the account is configured
  (`mini_program_app_id`; without it the message goes without a jump: the account cannot open a page of an app it
  does not name).
- mini-program: `POST /cgi-bin/message/subscribe/send?access_token=..` with `touser`, `template_id`, `data`, `page`
  (a page of this mini-program; a web link cannot be opened from a subscribe message and is left out),
  `miniprogram_state` and `lang`. Each send uses one of the subscriptions the person granted.

Both answer `{errcode, errmsg, msgid}` (errcode 0: accepted; the receipt's provider id is the msgid, which the
official account's TEMPLATESENDJOBFINISH push names). One attempt per send (`cdp.channels.retries` retries the
transient refusals), except for the token: refused as invalid or expired (40001, 40014, 42001), it is replaced and
the message sent once more (certainly not sent the first time). The error codes:

  40003 invalid openid                           -> invalid_address (the OpenID is dead for this app)
  43101 no subscription left / user refused      -> permanent `user_refused`
  43004 the person does not follow the account   -> permanent `not_following`
  40036, 40037 template id invalid               -> permanent `invalid_template`
  47001, 47003 a data field invalid              -> permanent `invalid_data`
  40165, 41030 page invalid                      -> permanent `invalid_page`
  45168 sensitive words                          -> permanent `content_refused`
  48001, 43107 api not allowed / capability ban  -> permanent `not_allowed`
  45009 the day's quota is spent                 -> permanent `quota_exceeded` (seconds later cannot help)
  40013, 40125, 40164, 40002, 41002, 41004 (token: bad app id or secret, IP not whitelisted) -> permanent
                                                    `credentials_rejected`
  -1 busy, 45011 minute quota, 43108, HTTP 429 and 5xx, no connection -> transient
  any other errcode                              -> transient, code `wechat_{errcode}` (it was not sent)
  no answer to the send (a read timeout)         -> ChannelError (WeChat may have sent it)

Neither the app secret nor the access token ever appears in an error message or a log line: the send URL carries
the token, so a transport error is reported by its reason only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.channels.wechat_tokens import AccessTokens
from cdp.connectors.sender_accounts import WeChatSenders
from cdp.connectors.sources import WeChatApp
from cdp.errors import ChannelError, StoreError
from cdp.observability import logger
from cdp.shared.http import HttpAnswer, HttpTransport, HttpUnreachable, urllib_transport
from cdp.shared.time import utc_now

PROVIDER = "wechat"
TOKEN_PATH = "/cgi-bin/stable_token"  # noqa: S105 - a path, not a secret
TEMPLATE_PATH = "/cgi-bin/message/template/send"
SUBSCRIBE_PATH = "/cgi-bin/message/subscribe/send"
MAX_ERRMSG = 200

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
TRANSIENT = frozenset({-1, 45011, 43108})
CREDENTIAL_ERRORS = frozenset({40001, 40002, 40013, 40125, 40164, 41002, 41004})
PERMANENT: Mapping[int, str] = {
    43101: "user_refused",
    43004: "not_following",
    40036: "invalid_template",
    40037: "invalid_template",
    47001: "invalid_data",
    47003: "invalid_data",
    40165: "invalid_page",
    41030: "invalid_page",
    45168: "content_refused",
    48001: "not_allowed",
    43107: "not_allowed",
    45009: "quota_exceeded",
}
INVALID_OPENID = 40003
DUPLICATE_CLIENT_MSG_ID = 45065  # a repeated client_msg_id, where WeChat names the first message's msgid

MiniProgramState = Literal["developer", "trial", "formal"]


@dataclass(frozen=True)
class _Answer:
    errcode: int
    errmsg: str
    document: dict[str, Any]


class WeChatChannel(Channel):
    """One WeChat app's sender: `app_id` names it (the key of its `WeChatApp` in the sources document)."""

    name: ChannelName = "wechat"

    def __init__(
        self,
        app_id: str,
        app: WeChatApp,
        senders: WeChatSenders,
        tokens: AccessTokens,
        transport: HttpTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
        *,
        mini_program_app_id: str | None = None,
        miniprogram_state: MiniProgramState = "formal",
        lang: str = "zh_CN",
    ) -> None:
        if app.app_secret is None:
            raise ValueError(f"WeChat app {app_id} has no app_secret: it cannot fetch the token that sends")
        if app_id not in senders.apps:
            raise ValueError(f"WeChat app {app_id} is not one of the brand's sending apps {list(senders.apps)}")
        self._app_id = app_id
        self._app = app
        self._secret = app.app_secret.get_secret_value()
        self._base = senders.endpoint.rstrip("/")
        self._tokens = tokens
        self._transport = transport or urllib_transport(senders.timeout_s)
        self._clock = clock
        self._mini_program = mini_program_app_id
        self._state = miniprogram_state
        self._lang = lang

    @property
    def app_id(self) -> str:
        return self._app_id

    # ---- sending ---------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if not message.template_ref or not message.fields:
            raise DeliveryRejected(
                f"message {message.message_id}: WeChat sends registered templates only, and it names no template "
                "id or fields",
                code="template_missing",
                permanent=True,
            )
        if message.address_scope is not None and message.address_scope != self._app_id.lower():
            raise DeliveryRejected(
                f"message {message.message_id}: its OpenID belongs to app {message.address_scope}, not {self._app_id}",
                code="wrong_app",
                permanent=True,
            )
        path, body = self._request(message)
        token = self._token()
        answer = self._send(message, path, body, token)
        if answer.errcode in TOKEN_ERRORS:
            logger.info("WeChat refused the access token: replacing it", app_id=self._app_id, errcode=answer.errcode)
            token = self._replace(token)
            answer = self._send(message, path, body, token)
            if answer.errcode in TOKEN_ERRORS:
                raise DeliveryRejected(
                    f"message {message.message_id}: WeChat refused a fresh access token of app {self._app_id} too "
                    f"(errcode {answer.errcode})",
                    code="token_rejected",
                    permanent=True,  # retrying would force more refreshes (WeChat allows 20 a day), not send
                )
        return self._receipt(message, answer)

    def _request(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        data = {key: {"value": value} for key, value in message.fields.items()}
        link = message.link
        web = link is not None and "://" in link
        if self._app.kind == "official_account":
            body: dict[str, Any] = {
                "touser": message.address,
                "template_id": message.template_ref,
                "client_msg_id": message.message_id,
                "data": data,
            }
            if link and web:
                body["url"] = link
            elif link and self._mini_program:
                body["miniprogram"] = {"appid": self._mini_program, "pagepath": link}
            elif link:
                logger.warning(
                    "a mini-program page link cannot be opened from this official account (no mini-program "
                    "configured): sent without it",
                    app_id=self._app_id,
                    message_id=message.message_id,
                )
            return TEMPLATE_PATH, body
        body = {
            "touser": message.address,
            "template_id": message.template_ref,
            "data": data,
            "miniprogram_state": self._state,
            "lang": self._lang,
        }
        if link and not web:
            body["page"] = link
        return SUBSCRIBE_PATH, body

    def _send(self, message: OutboundMessage, path: str, body: dict[str, Any], token: str) -> _Answer:
        url = f"{self._base}{path}?access_token={quote(token, safe='')}"
        what = f"WeChat {self._kind_label} for message {message.message_id}"
        try:
            http = self._transport("POST", url, _JSON_HEADERS, _encode(body))
        except HttpUnreachable as exc:
            reason = self._redact(str(exc).removeprefix(f"{url}: "), token)
            if exc.sent is False:
                raise DeliveryRejected(f"{what}: WeChat not reachable: {reason}") from None
            raise ChannelError(f"{what}: no answer (WeChat may have sent it): {reason}") from None
        return self._answer(http, what, token, sent_if_unreadable=True)

    def _receipt(self, message: OutboundMessage, answer: _Answer) -> DeliveryReceipt:
        what = f"WeChat {self._kind_label} for message {message.message_id}"
        msgid = answer.document.get("msgid")
        if answer.errcode in (0, DUPLICATE_CLIENT_MSG_ID):  # a repeated client_msg_id: WeChat has it already
            provider_id = str(msgid) if msgid not in (None, "") else message.message_id
            return DeliveryReceipt(
                message_id=message.message_id,
                channel=self.name,
                provider=PROVIDER,
                provider_id=provider_id,
                accepted_at=self._clock(),
            )
        raise _refusal(what, answer)

    @property
    def _kind_label(self) -> str:
        return "template message" if self._app.kind == "official_account" else "subscribe message"

    # ---- the access token ------------------------------------------------------------------------------------

    def _token(self) -> str:
        try:
            stored = self._tokens.current(self._app_id)
        except StoreError as exc:  # the store is down: WeChat's normal mode answers the same token anyway
            logger.warning("the WeChat token store could not be read: fetching", app_id=self._app_id, error=str(exc))
            stored = None
        return stored if stored is not None else self._fetch(force=False)

    def _replace(self, refused: str) -> str:
        """A successor another container stored since, else a forced refresh (which invalidates `refused`)."""
        try:
            self._tokens.discard(self._app_id, refused)
            stored = self._tokens.current(self._app_id)
        except StoreError as exc:
            logger.warning("the WeChat token store failed: forcing a refresh", app_id=self._app_id, error=str(exc))
            stored = None
        if stored is not None and stored != refused:
            return stored
        return self._fetch(force=True)

    def _fetch(self, force: bool) -> str:
        what = f"fetching the access token of WeChat app {self._app_id}"
        body: dict[str, Any] = {"grant_type": "client_credential", "appid": self._app_id, "secret": self._secret}
        if force:
            body["force_refresh"] = True
        url = f"{self._base}{TOKEN_PATH}"
        try:
            http = self._transport("POST", url, _JSON_HEADERS, _encode(body))
        except HttpUnreachable as exc:  # the message itself was not sent: try again later
            raise DeliveryRejected(f"{what}: no answer: {self._redact(str(exc), '')}") from None
        answer = self._answer(http, what, "", sent_if_unreadable=False)
        if answer.errcode != 0:
            raise _token_refusal(what, answer)
        token, expires_in = answer.document.get("access_token"), answer.document.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise DeliveryRejected(f"{what}: the answer has no access_token and expires_in")
        try:
            self._tokens.store(self._app_id, token, self._clock() + timedelta(seconds=expires_in))
        except StoreError as exc:  # sent with it all the same; the next container fetches the same token
            logger.warning("the WeChat token could not be stored", app_id=self._app_id, error=str(exc))
        return token

    # ---- answers ---------------------------------------------------------------------------------------------

    def _answer(self, http: HttpAnswer, what: str, token: str, sent_if_unreadable: bool) -> _Answer:
        """WeChat answers HTTP 200 with `errcode` (absent or 0 on success); a gateway's 429 or 5xx is transient."""
        if http.status == 429 or http.status >= 500:
            raise DeliveryRejected(f"{what}: HTTP {http.status}", code=f"http_{http.status}")
        try:
            document = json.loads(http.body) if http.body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        ok = 200 <= http.status < 300
        if not isinstance(document, dict) or not (ok or isinstance(document.get("errcode"), int)):
            if ok and sent_if_unreadable:
                raise ChannelError(f"{what}: HTTP {http.status} with an unreadable answer (it may have been sent)")
            raise DeliveryRejected(f"{what}: HTTP {http.status} with no WeChat answer", code=f"http_{http.status}")
        errcode = document.get("errcode", 0)
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise DeliveryRejected(f"{what}: the answer's errcode {errcode!r} is not a number")
        errmsg = self._redact(str(document.get("errmsg") or ""), token)[:MAX_ERRMSG]
        return _Answer(errcode, errmsg, document)

    def _redact(self, text: str, token: str) -> str:
        for secret in (self._secret, token, quote(token, safe="")):
            if secret:
                text = text.replace(secret, "***")
        return text


_JSON_HEADERS = {"content-type": "application/json; charset=utf-8", "accept": "application/json"}


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _refusal(what: str, answer: _Answer) -> DeliveryRejected:
    said = f"{what}: WeChat refused it: {answer.errcode} {answer.errmsg}".rstrip()
    if answer.errcode == INVALID_OPENID:
        return DeliveryRejected(said, code="invalid_openid", invalid_address=True)
    if answer.errcode in PERMANENT:
        return DeliveryRejected(said, code=PERMANENT[answer.errcode], permanent=True)
    if answer.errcode in TRANSIENT:
        return DeliveryRejected(said, code="busy")
    return DeliveryRejected(said, code=f"wechat_{answer.errcode}")


def _token_refusal(what: str, answer: _Answer) -> DeliveryRejected:
    said = f"{what}: WeChat refused it: {answer.errcode} {answer.errmsg}".rstrip()
    if answer.errcode in CREDENTIAL_ERRORS:
        return DeliveryRejected(said, code="credentials_rejected", permanent=True)
    if answer.errcode == 45009:
        return DeliveryRejected(said, code="quota_exceeded", permanent=True)
    if answer.errcode in TRANSIENT:
        return DeliveryRejected(said, code="busy")
    return DeliveryRejected(said, code=f"wechat_{answer.errcode}")
