"""WeChat: an official account's server callback, a mini-program's message push, and the events a mini-program's
server posts for its users.

Official account (`/v1/wechat/{app id}`, plain-text mode): WeChat signs each call with the account's token
(signature = sha1 of the sorted token, timestamp and nonce, in the query string). A GET is the URL check and answers
`echostr`; a POST carries one XML push (follow/unfollow, QR scan, menu click/view, template delivery status, or a
message the user sent) and must be answered "success" within 5 s, or WeChat retries it 3 times. Event ids are
WeChat's MsgId, else FromUserName + CreateTime + Event (+ EventKey) as WeChat's docs advise, so retries count once.

Mini-program message push (消息推送, the same route, for an app whose `wechat` entry has a `token`): signed and, in
safe mode, encrypted exactly like an official account's pushes, in XML or JSON (the format picked in the console; told
apart by the body's first character). Its subscribe-message events are read; its other pushes (content-security
results, customer-service messages, ...) are answered "success" and not ingested:
- `subscribe_msg_sent_event`: each `List` entry (TemplateId, MsgID, ErrorCode, ErrorStatus) is the delivery receipt
  of the subscribe message WeChat's `subscribe/send` answered that msgid for: `message_delivered` with `provider`
  wechat (the message log finds ours through the msgid, like a TEMPLATESENDJOBFINISH), delivered on ErrorCode 0,
  else failed with the code. Event id: app + MsgID.
- `subscribe_msg_popup_event` (the person answered the subscribe prompt) and `subscribe_msg_change_event` (they
  changed it in the settings; WeChat pushes refusals only): one `custom` event per template,
  `wechat_subscribe_accepted` or `wechat_subscribe_rejected` with the template id. Not `consent_changed`: a person's
  consent is kept per channel, and one template's answer is neither their WeChat opt-in (following the account) nor
  its withdrawal; a one-time subscription is a single send's allowance, which WeChat itself counts (a send without
  one is refused 43101, `user_refused`). Event id: app + FromUserName + CreateTime + Event + TemplateId.
In JSON, `List` is an object when it holds one entry and an array otherwise (WeChat's docs); both are read. An
official account's subscription-notification pushes (the same three events) map the same way.

Mini-program relay (`/v1/wechat/{app id}/events`): the brand's mini-program server (which learnt the user's OpenID
from code2session) posts JSON signed with the app's `secret` (our x-cdp-signature scheme). Money is in fen, as WeChat
Pay gives it: integers, kept as minor units.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    Reply,
    event_dict,
    ident,
    map_items,
    obj,
    present,
    reject,
    require,
)
from cdp.connectors.sources import SourcesConfig, WeChatApp
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.ports import DedupeLedger, DedupeStatus
from cdp.ingest.security import JSON_MEDIA_TYPES, XML_MEDIA_TYPES, check_media_type, check_timestamp, same, verify_cdp
from cdp.observability import logger
from cdp.shared.safe_json import loads as safe_loads
from cdp.shared.time import parse_iso

SUCCESS = Reply(body="success")  # what WeChat wants back for a push, accepted or already seen
OA_MAX_BODY = 64 * 1024  # a push is well under 2 KB
NONCE_CLAIM = "wechat-nonce"  # what a nonce claim records in the dedupe ledger in place of an archive key
MP_MAX_BODY = 256 * 1024
MP_MAX_EVENTS = 500
_ENVELOPE = {"ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "MsgId", "UnionId", "UnionID", "Encrypt"}
_MENU_AND_SCAN = {
    "SCAN": ("wechat_scan", "scene"),
    "CLICK": ("wechat_menu_click", "event_key"),
    "VIEW": ("wechat_menu_view", "url"),
}
# WeChat certification and broadcast notices: about the account, not a follower
_ACCOUNT_EVENTS = frozenset(
    {
        "MASSSENDJOBFINISH",
        "qualification_verify_success",
        "qualification_verify_fail",
        "naming_verify_success",
        "naming_verify_fail",
        "annual_renew",
        "verify_expired",
    }
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
# subscribe-message events -> the element (XML) that holds their List entries
SUBSCRIBE_EVENTS = {
    "subscribe_msg_popup_event": "SubscribeMsgPopupEvent",
    "subscribe_msg_change_event": "SubscribeMsgChangeEvent",
    "subscribe_msg_sent_event": "SubscribeMsgSentEvent",
}
MAX_LIST_ITEMS = 20  # a prompt asks for a few templates at a time; this bounds what one push fans out to
# SubscribeStatusString: accept (acceptWithAudio / acceptWithAlert: with a voice or banner reminder) or reject
_ACCEPTED = frozenset({"accept", "acceptwithaudio", "acceptwithalert"})
_REJECTED = frozenset({"reject"})


def _app(secrets: SourcesConfig, key: str | None, kind: str) -> WeChatApp:
    app = secrets.wechat.get(key or "")
    if app is None or app.kind != kind:
        raise AuthenticationError(f"unknown WeChat {kind.replace('_', ' ')} {key!r}")
    return app


def _push_app(secrets: SourcesConfig, key: str | None) -> WeChatApp:
    """The app whose pushes WeChat signs with its token: an official account, or a mini-program with a message push."""
    app = secrets.wechat.get(key or "")
    if app is None or app.token is None:
        raise AuthenticationError(
            f"unknown WeChat official account (or mini-program with a message-push token) {key!r}"
        )
    return app


# ---- official account --------------------------------------------------------------------------------------------


def oa_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's callback signature: sha1 over the lexically sorted token, timestamp and nonce."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode()).hexdigest()  # noqa: S324 (WeChat's scheme)


def oa_msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """Safe mode's msg_signature: sha1 of the sorted token, timestamp, nonce and <Encrypt> text (binds the body)."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypt))).encode()).hexdigest()  # noqa: S324


class OfficialAccountConnector(Connector):
    """WeChat's signed pushes: an official account's, and a mini-program's message push (an app with a `token`).

    Plain-text mode: the signature covers token, timestamp and nonce only, so a captured signature could carry
    another body inside the window: each (timestamp, nonce) is claimed once, with its body (`check_replay`). Safe
    mode (the app has an `encoding_aes_key`): msg_signature covers the encrypted body, which is decrypted here and
    its app id checked; plain-text pushes are then refused. An official account pushes XML only (JSON is a 415); a
    mini-program XML or JSON."""

    name = "wechat_oa"
    max_body_bytes = OA_MAX_BODY
    media_types = XML_MEDIA_TYPES + JSON_MEDIA_TYPES  # narrowed to XML for an official account once its app is known
    json_body = False  # a JSON push is parsed by `safe_json.loads`, which bounds its depth first

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        app = _push_app(secrets, request.key)
        if app.kind == "official_account":
            check_media_type(request.headers, request.body, XML_MEDIA_TYPES)
        query = request.query
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        token = app.token.get_secret_value() if app.token else ""
        if request.method != "GET" and app.encoding_aes_key is not None:
            # safe mode; the URL check (GET) is signed the plain-text way in both modes
            msg_signature = query.get("msg_signature", "")
            if query.get("encrypt_type") != "aes" or not msg_signature:
                raise AuthenticationError(
                    "this account is configured for safe mode: plain-text pushes are refused "
                    "(expected encrypt_type=aes and msg_signature)"
                )
            check_timestamp(timestamp, request.signed_window_at)
            if not same(oa_msg_signature(token, timestamp, nonce, _encrypted(request.body)), msg_signature):
                raise AuthenticationError("bad msg_signature")
        else:
            signature = query.get("signature", "")
            if not signature:
                raise AuthenticationError("missing signature query parameter")
            check_timestamp(timestamp, request.signed_window_at)
            if not same(oa_signature(token, timestamp, nonce), signature):
                raise AuthenticationError("bad signature")
        channel = "wechat_oa" if app.kind == "official_account" else "mini_program"
        return Binding(brand_id=app.brand_id, label=f"wechat:{request.key}", channel=channel)

    def check_replay(
        self, request: InboundRequest, binding: Binding, secrets: SourcesConfig, ledger: DedupeLedger
    ) -> None:
        """Plain-text POSTs: the first body seen with a signed (timestamp, nonce) is the only one accepted with it.
        WeChat's own retries (the same request when we answered late) still pass, so a push is never lost to this.
        Safe mode needs no claim: its signature covers the body, and a resent body dedupes on its event ids. The
        mode is the app's configuration, never the request's say."""
        if request.method == "GET" or _push_app(secrets, request.key).encoding_aes_key is not None:
            return
        app, timestamp, nonce = request.key or "", request.query.get("timestamp", ""), request.query.get("nonce", "")
        claim = f"{NONCE_CLAIM}#{app}#{timestamp}#{hashlib.sha256(nonce.encode()).hexdigest()[:32]}"
        with_body = f"{claim}#{hashlib.sha256(request.body).hexdigest()[:32]}"
        # three writes on a first delivery, one on a retry: the (nonce, body) claim is confirmed only once the
        # nonce itself was free, so a refused body is never later taken for a retry
        if ledger.claim(with_body, NONCE_CLAIM, request.received_at) is DedupeStatus.DUPLICATE:
            return  # this very body was accepted with this nonce before: WeChat retrying
        if ledger.claim(claim, NONCE_CLAIM, request.received_at) is not DedupeStatus.NEW:
            raise AuthenticationError("this signature (timestamp and nonce) was already used with another body")
        ledger.confirm([with_body], NONCE_CLAIM, request.received_at)

    def unseal(self, request: InboundRequest, secrets: SourcesConfig) -> bytes | None:
        """Safe mode: the decrypted push (authenticate has required and checked its msg_signature)."""
        app = _push_app(secrets, request.key)
        if request.method == "GET" or app.encoding_aes_key is None:
            return None
        return decrypt_push(_encrypted(request.body), app.encoding_aes_key.get_secret_value(), request.key or "")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        if request.method == "GET":  # the URL check: archived like any request, maps to nothing (replay included)
            return Mapped(reply=Reply(body=request.query.get("echostr", "")), batch=False)
        push = read_push(request.body)
        app_id = request.key or ""
        event = push.fields.get("Event", "")
        subscribe = push.fields.get("MsgType") == "event" and event in SUBSCRIBE_EVENTS
        if binding.channel == "mini_program" and not subscribe:
            # a mini-program's other pushes (content-security results, customer-service messages, ...): not ours
            logger.info(
                "mini-program push not ingested", app_id=app_id, msg_type=push.fields.get("MsgType"), event=event
            )
            return Mapped(reply=SUCCESS, batch=False)
        _check_envelope(push.fields)
        if subscribe:
            mapped = _subscribe_mapped(push, app_id, binding)
        else:
            mapped = map_items([push.fields], lambda p: _push_events(p, app_id, binding), prefix="", batch=False)
        mapped.reply = SUCCESS
        return mapped


def _encrypted(body: bytes) -> str:
    """The Encrypt text of a safe-mode push, XML or JSON (parsed with the same defences as any push)."""
    if _is_json(body):
        payload = safe_loads(body)
        encrypt = payload.get("Encrypt") if isinstance(payload, dict) else None
    else:
        encrypt = _xml_root(body).findtext("Encrypt")
    if not isinstance(encrypt, str) or not encrypt.strip():
        raise InvalidInputError("a safe-mode push needs its Encrypt element", "Encrypt")
    return encrypt.strip()


def decrypt_push(encrypt: str, encoding_aes_key: str, app_id: str) -> bytes:
    """WeChat's message encryption: AES-256-CBC with key = base64(EncodingAESKey + "="), IV = the key's first 16
    bytes, PKCS#7 padding to 32 bytes; the plaintext is 16 random bytes, the XML's length (4 bytes, big-endian),
    the XML and the app id it was sent to, which must be this route's."""
    key = base64.b64decode(encoding_aes_key + "=")
    try:
        data = base64.b64decode(encrypt, validate=True)
    except binascii.Error as exc:
        raise InvalidInputError("Encrypt is not base64", "Encrypt") from exc
    if not data or len(data) % 16:
        raise InvalidInputError("Encrypt is not a whole number of AES blocks", "Encrypt")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad or len(plain) - pad < 20:
        raise AuthenticationError("the push does not decrypt with this account's EncodingAESKey")
    plain = plain[:-pad]
    length = int.from_bytes(plain[16:20], "big")
    xml, receiver = plain[20 : 20 + length], plain[20 + length :]
    if len(xml) != length or not same(receiver, app_id.encode()):
        raise AuthenticationError("the encrypted push was not sent to this app id")
    return xml


def _xml_root(body: bytes) -> Any:
    """DTDs and entities are refused (XXE, billion laughs); WeChat never sends them."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise InvalidInputError("XML with a DTD or entity declarations is not accepted", "body") from exc
    except ParseError as exc:
        raise InvalidInputError(f"body is not well-formed XML: {exc}", "body") from exc
    if root.tag != "xml":
        raise InvalidInputError(f"expected an <xml> push, got <{root.tag}>", "body")
    return root


@dataclass(frozen=True)
class Push:
    """A push as read: its top-level fields and, for a subscribe-message event, its `List` entries."""

    fields: dict[str, str]
    items: list[dict[str, str]]


def parse_push(body: bytes) -> dict[str, str]:
    """A push's top-level fields (XML or JSON), its envelope checked."""
    fields = read_push(body).fields
    _check_envelope(fields)
    return fields


def read_push(body: bytes) -> Push:
    """XML, or JSON (a mini-program's message push in JSON format), told apart by the first character. Scalars
    only: text, or a JSON number (kept as its text); anything else is left out, so a required field it held is
    reported missing."""
    if _is_json(body):
        payload = safe_loads(body)
        if not isinstance(payload, dict):
            raise InvalidInputError("a JSON push must be an object", "body")
        fields = _scalar_fields(payload)
        entries = _json_entries(payload, SUBSCRIBE_EVENTS.get(fields.get("Event", "")))
    else:
        root = _xml_root(body)
        fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
        container = SUBSCRIBE_EVENTS.get(fields.get("Event", ""))
        holder = root.find(container) if container else None
        lists = (holder if holder is not None else root).findall("List") if container else []
        entries = [{c.tag: (c.text or "").strip() for c in entry if len(c) == 0} for entry in lists]
    if fields.get("Encrypt") and not fields.get("MsgType"):
        raise InvalidInputError(
            "an encrypted (safe mode) push needs the account's encoding_aes_key in the sources secret",
            "Encrypt",
        )
    if len(entries) > MAX_LIST_ITEMS:
        raise InvalidInputError(f"List holds {len(entries)} entries; the limit is {MAX_LIST_ITEMS}", "List")
    return Push(fields, entries)


def _check_envelope(fields: dict[str, str]) -> None:
    for name in ("FromUserName", "CreateTime", "MsgType"):
        if not fields.get(name):
            raise InvalidInputError(f"{name} is required", name)
    if not fields["CreateTime"].isdigit():
        raise InvalidInputError("CreateTime must be unix seconds", "CreateTime")


def _is_json(body: bytes) -> bool:
    return body.lstrip()[:1] == b"{"


def _scalar_fields(data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, str):
            out[key] = value.strip()
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = str(value)
    return out


def _json_entries(payload: dict[str, Any], container: str | None) -> list[dict[str, str]]:
    """`List`: an object for one entry, an array for more (WeChat's docs); also read under the event's own key
    (`SubscribeMsgSentEvent: {List: ...}`), the XML layout some relays keep."""
    if container is None:
        return []
    raw = payload.get("List")
    if raw is None:
        nested = payload.get(container)
        raw = nested.get("List") if isinstance(nested, dict) else nested
    if raw is None:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    if len(entries) > MAX_LIST_ITEMS:
        raise InvalidInputError(f"List holds {len(entries)} entries; the limit is {MAX_LIST_ITEMS}", "List")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInputError("each List entry must be an object", f"List.{i}")
        out.append(_scalar_fields(entry))
    return out


def _push_events(push: dict[str, str], app_id: str, binding: Binding) -> list[dict[str, Any]]:
    if push.get("Event") in _ACCOUNT_EVENTS:
        return []  # about the account itself (FromUserName is a system account, not a person)
    openid = push["FromUserName"]
    event_type, properties = _oa_typed(push, app_id)
    event = event_dict(
        event_type=event_type,
        event_id=_oa_event_id(push, app_id),
        source="wechat_oa",
        binding=binding,
        occurred_at=datetime.fromtimestamp(int(push["CreateTime"]), UTC),
        identifiers=present(
            ident("wechat_openid", openid, app_id),
            ident("wechat_unionid", push.get("UnionId") or push.get("UnionID")),
        ),
        properties=properties,
        context={"wechat_account": push.get("ToUserName", "")},
    )
    return [event]


def _subscribe_mapped(push: Push, app_id: str, binding: Binding) -> Mapped:
    """One event per `List` entry; a bad entry is rejected alone (and the push still answered "success")."""
    event = push.fields["Event"]
    if not push.items:
        return Mapped(rejected=[reject(0, None, "List", f"a {event} push needs its List entries")], batch=False)
    return map_items(
        push.items, lambda item: [_subscribe_event(push.fields, item, app_id, binding)], prefix="List", batch=False
    )


def _subscribe_event(fields: dict[str, str], item: dict[str, str], app_id: str, binding: Binding) -> dict[str, Any]:
    event = fields["Event"]
    template_id = item.get("TemplateId", "")
    if not _TEMPLATE_ID.match(template_id):
        raise MappingError("TemplateId", "TemplateId is required: up to 128 letters, digits, '_' or '-'")
    if event == "subscribe_msg_sent_event":
        msgid = item.get("MsgID") or item.get("MsgId") or ""
        if not _SAFE_ID.match(msgid):
            raise MappingError(
                "MsgID", "MsgID is required: WeChat's id of the message (the msgid subscribe/send answered)"
            )
        code = item.get("ErrorCode", "")
        if not re.fullmatch(r"-?[0-9]{1,10}", code):
            raise MappingError("ErrorCode", "ErrorCode is required: the delivery's result code (0: delivered)")
        event_type = "message_delivered"
        event_id = _stable_id(app_id, "sub", msgid)
        properties = _clean(
            {  # MsgID is WeChat's: the message log finds ours through it (`provider`), as for a template message
                "message_id": msgid,
                "channel": "wechat",
                "provider": "wechat",
                "status": "delivered" if int(code) == 0 else "failed",
                "error_code": code if int(code) != 0 else None,
                "provider_status": item.get("ErrorStatus", "")[:200],
                "template_id": template_id,
            }
        )
    else:
        status = item.get("SubscribeStatusString", "")
        if status.lower() not in _ACCEPTED | _REJECTED:
            raise MappingError(
                "SubscribeStatusString", f"SubscribeStatusString {status[:40]!r} is not accept or reject"
            )
        granted = status.lower() in _ACCEPTED
        event_type = "custom"
        event_id = _stable_id(app_id, fields["FromUserName"], fields["CreateTime"], event, template_id)
        properties = _clean(
            {
                "name": "wechat_subscribe_accepted" if granted else "wechat_subscribe_rejected",
                "template_id": template_id,
                "granted": granted,
                "status": status,
                "via": "popup" if event == "subscribe_msg_popup_event" else "settings",
                "popup_scene": item.get("PopupScene", "")[:16],
                "app_id": app_id,
            }
        )
    return event_dict(
        event_type=event_type,
        event_id=event_id,
        source="mini_program" if binding.channel == "mini_program" else "wechat_oa",
        binding=binding,
        occurred_at=datetime.fromtimestamp(int(fields["CreateTime"]), UTC),
        identifiers=present(ident("wechat_openid", fields["FromUserName"], app_id)),
        properties=properties,
        context={"wechat_account": fields.get("ToUserName", "")},
    )


def _oa_typed(push: dict[str, str], app_id: str) -> tuple[str, dict[str, Any]]:
    if push["MsgType"] != "event":  # a message the user sent: text, image, voice, video, location, link
        return "custom", {"name": "wechat_message", "msg_type": push["MsgType"], **_extras(push)}
    event = push.get("Event", "")
    key = push.get("EventKey", "")
    if event in ("subscribe", "unsubscribe"):
        scene = key.removeprefix("qrscene_") if key.startswith("qrscene_") else None  # scan-to-follow
        return "consent_changed", _clean(
            {
                "channel": "wechat",
                "granted": event == "subscribe",
                "app_id": app_id,
                "scene": scene,
                "qr_ticket": push.get("Ticket") if scene is not None else None,
            }
        )
    if event in _MENU_AND_SCAN:  # SCAN: an existing follower scanned a parametric QR code
        name, key_field = _MENU_AND_SCAN[event]
        extra = {"qr_ticket": push.get("Ticket"), "menu_id": push.get("MenuId")}
        return "custom", _clean({"name": name, key_field: key, **extra})
    if event == "TEMPLATESENDJOBFINISH":
        status = push.get("Status", "")  # success | failed:user block | failed: system failed
        return "message_delivered", {  # MsgID is WeChat's: the message log finds ours through it (`provider`)
            "message_id": _require_push(push, "MsgID"),
            "channel": "wechat",
            "provider": "wechat",
            "status": "delivered" if status == "success" else "failed",
            "provider_status": status,
        }
    if not event:
        raise MappingError("Event", "an event push needs its Event")
    return "custom", {"name": f"wechat_{event.lower()}", **_extras(push)}


def _oa_event_id(push: dict[str, str], app_id: str) -> str:
    """Scoped by app: MsgIds are per account. Without one, WeChat's own dedupe key for event pushes."""
    if push.get("MsgId"):
        return _stable_id(app_id, "msg", push["MsgId"])
    if push.get("Event") == "TEMPLATESENDJOBFINISH" and push.get("MsgID"):
        return _stable_id(app_id, "tmpl", push["MsgID"])
    key = push.get("EventKey")
    key_digest = hashlib.sha256(key.encode()).hexdigest()[:12] if key else None  # keys may be URLs
    return _stable_id(app_id, push["FromUserName"], push["CreateTime"], push.get("Event", ""), key_digest)


def _require_push(push: dict[str, str], name: str) -> str:
    if not push.get(name):
        raise MappingError(name, f"{name} is required for a {push.get('Event')} push")
    return push[name]


def _extras(push: dict[str, str]) -> dict[str, Any]:
    """The push's other fields in snake case (Content, PicUrl, Location_X, ...), bounded."""
    out = {re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", k).lower(): v[:2000] for k, v in push.items() if k not in _ENVELOPE}
    return {k: v for k, v in list(out.items())[:30] if k != "name"}


# ---- mini-program ------------------------------------------------------------------------------------------------


class MiniProgramConnector(Connector):
    name = "wechat_mp"
    max_body_bytes = MP_MAX_BODY

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        app = _app(secrets, request.key, "mini_program")
        if app.secret is None:  # never verify against an empty key
            raise AuthenticationError(
                f"mini-program {request.key!r} has no relay secret: WeChat's message push goes to /v1/wechat/{{app id}}"
            )
        verify_cdp(request.headers, request.body, app.secret.get_secret_value(), request.signed_window_at)
        return Binding(brand_id=app.brand_id, label=f"wechat:{request.key}", channel="mini_program")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        payload = safe_loads(request.body)
        if not isinstance(payload, dict):
            raise InvalidInputError("body must be a JSON object", "body")
        openid = payload.get("openid")
        if not isinstance(openid, str) or not openid.strip():
            raise InvalidInputError("openid is required (from code2session)", "openid")
        events = payload.get("events")
        if not isinstance(events, list) or not events:
            raise InvalidInputError("events must be a non-empty list", "events")
        if len(events) > MP_MAX_EVENTS:
            raise InvalidInputError(f"events holds {len(events)} items; the limit is {MP_MAX_EVENTS}", "events")
        app_id = request.key or ""
        user = present(
            ident("wechat_openid", openid, app_id),
            ident("wechat_unionid", payload.get("unionid")),
            ident("phone", payload.get("phone")),
        )
        return map_items(events, lambda e: [_mp_event(e, app_id, user, binding)], prefix="events", id_field="id")


def _mp_event(item: Any, app_id: str, user: list[dict[str, Any]], binding: Binding) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise MappingError("", "each event must be a JSON object")
    event_id = str(require(item, "id", (str, int)))
    name = require(item, "name")
    properties = obj(item, "properties")
    identifiers = list(user)
    try:
        event_type, props = _mp_typed(name, properties)
        if event_type == "identify":  # getPhoneNumber: how a mini-program binds a phone to the OpenID
            identifiers.extend(present(ident("phone", _bound_phone(properties, user))))
    except MappingError as exc:
        raise MappingError(f"properties.{exc.field}", exc.message) from exc
    return event_dict(
        event_type=event_type,
        event_id=_stable_id(app_id, event_id),
        source="mini_program",
        binding=binding,
        occurred_at=_mp_time(item.get("timestamp")),
        identifiers=list({(i["type"], i["value"]): i for i in identifiers}.values()),
        properties=props,
    )


def _mp_typed(name: str, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if name == "page_view":
        path = str(require(properties, "path")).lstrip("/")
        referrer = properties.get("referrer_path")
        return "page_view", _clean(
            {
                "url": f"mp://{path}",
                "title": properties.get("title"),
                "referrer": f"mp://{str(referrer).lstrip('/')}" if referrer else None,
                "scene": properties.get("scene"),  # the mini-program launch scene, e.g. 1047 = scanned a code
            }
        )
    if name == "add_to_cart":
        return "add_to_cart", _clean(
            {
                "sku": str(require(properties, "sku", (str, int))),
                "category": properties.get("category"),
                "quantity": _quantity(properties),
                "unit_price_minor": _fen(properties, "price"),
                "currency": _currency(properties),
            }
        )
    if name == "order_paid":
        return "order_placed", _order(properties)
    if name == "get_phone_number":
        return "identify", {}
    return "custom", {"name": name, **_scalars(properties)}


def _order(properties: dict[str, Any]) -> dict[str, Any]:
    lines = properties.get("lines")
    if not isinstance(lines, list) or not lines:
        raise MappingError("lines", "order_paid needs a non-empty lines list")
    out_lines = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise MappingError(f"lines.{i}", "each line must be an object")
        try:
            out_lines.append(
                _clean(
                    {
                        "sku": str(require(line, "sku", (str, int))),
                        "name": line.get("name"),
                        "category": line.get("category"),
                        "quantity": _quantity(line),
                        "unit_price_minor": _fen(line, "price"),
                    }
                )
            )
        except MappingError as exc:
            raise MappingError(f"lines.{i}.{exc.field}", exc.message) from exc
    return _clean(
        {
            "order_id": str(require(properties, "order_id", (str, int))),
            "lines": out_lines,
            "total_minor": _fen(properties, "total"),
            "currency": _currency(properties),
            "coupon_id": properties.get("coupon_id"),
            "coupon_code": properties.get("coupon_code"),  # the member's issued code the order used
            "transaction_id": properties.get("transaction_id"),  # the WeChat Pay transaction
        }
    )


def _bound_phone(properties: dict[str, Any], user: list[dict[str, Any]]) -> str | None:
    """getPhoneNumber's phone_info as the brand's server got it (phoneNumber, or countryCode + purePhoneNumber);
    None when the payload's top-level `phone` already carries it."""
    pure, country = properties.get("purePhoneNumber"), properties.get("countryCode")
    phone = properties.get("phoneNumber") or (f"+{country}{pure}" if pure and country else pure)
    if isinstance(phone, str | int) and str(phone).strip():
        return str(phone)
    if any(i["type"] == "phone" for i in user):
        return None
    raise MappingError("phoneNumber", "get_phone_number needs phoneNumber (or purePhoneNumber and countryCode)")


def _fen(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MappingError(name, f"{name} must be a non-negative integer amount in fen")
    return value


def _quantity(data: dict[str, Any]) -> int:
    value = data.get("quantity", 1)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingError("quantity", "quantity must be an integer")
    return value


def _currency(properties: dict[str, Any]) -> str:
    return str(properties.get("currency") or "CNY").upper()


def _mp_time(value: Any) -> datetime:
    """ISO-8601 with an offset, or unix milliseconds (what Date.now() gives in a mini-program)."""
    if value is None or value == "":
        raise MappingError("timestamp", "timestamp is required (ISO-8601 or unix milliseconds)")
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
        if isinstance(value, str):
            return datetime.fromtimestamp(int(value) / 1000, UTC) if value.isdigit() else parse_iso(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise MappingError("timestamp", f"not an ISO-8601 timestamp or unix milliseconds: {exc}") from exc
    raise MappingError("timestamp", "timestamp must be an ISO-8601 string or unix milliseconds")


# ---- shared ------------------------------------------------------------------------------------------------------


def _stable_id(app_id: str, *parts: str | None) -> str:
    """`{app}:{parts}`; hashed when the parts would not make a valid event id (too long or unsafe characters)."""
    joined = ":".join(p for p in parts if p)
    plain = f"{app_id}:{joined}"
    return plain if _SAFE_ID.match(plain) else f"{app_id[:60]}:h:{hashlib.sha256(joined.encode()).hexdigest()[:40]}"


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Custom events keep scalar properties only (nested objects would make item sizes unbounded)."""
    return {
        str(k)[:64]: v for k, v in list(values.items())[:50] if isinstance(v, str | int | float | bool) and k != "name"
    }


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}
