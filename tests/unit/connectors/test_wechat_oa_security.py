"""A WeChat official-account signature cannot carry another body (issue 12, point 7): safe mode's msg_signature binds
the encrypted body (decrypted and its app id checked), and in plain-text mode each signed (timestamp, nonce) is
claimed once with its body. WeChat's own retries of a push still pass; archive replay still maps what was stored."""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cdp.connectors.base import InboundRequest
from cdp.connectors.replay import ReplaySummary, replay_archive
from cdp.connectors.service import Ports, receive
from cdp.connectors.sources import SourcesConfigError, StaticSources, parse_sources
from cdp.connectors.wechat import OfficialAccountConnector, decrypt_push, oa_msg_signature, oa_signature
from cdp.errors import AuthenticationError
from cdp.ingest.ports import ArchivedRequest, RawArchive
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso
from tests.fakes.ledger import MemoryLedger

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "wechat"
NOW = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
PLAIN, SAFE = "wx-plain-oa", "wx-safe-oa"
TOKEN = "oa-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as the WeChat console shows it
SOURCES = parse_sources(
    {
        "wechat": {
            PLAIN: {"brand_id": "demo-brand", "kind": "official_account", "token": TOKEN},
            SAFE: {"brand_id": "demo-brand", "kind": "official_account", "token": TOKEN, "encoding_aes_key": AES_KEY},
        }
    }
)


def push(name: str = "subscribe.xml") -> bytes:
    return (SAMPLES / name).read_bytes()


def encrypt(xml: bytes, app_id: str = SAFE, key: str = AES_KEY) -> str:
    """WeChat's side of safe mode (what its servers send)."""
    raw_key = base64.b64decode(key + "=")
    plain = os.urandom(16) + struct.pack(">I", len(xml)) + xml + app_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def envelope(encrypted: str) -> bytes:
    to = "<ToUserName><![CDATA[gh_3f2a1b7c9d10]]></ToUserName>"
    return f"<xml>{to}<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


def plain_request(body: bytes, nonce: str = "1514711492", at: datetime = NOW, method: str = "POST") -> InboundRequest:
    timestamp = str(int(at.timestamp()))
    query = {"signature": oa_signature(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    return InboundRequest("wechat_oa", method, body, NOW, f"req-{nonce}", key=PLAIN, query=query)


def safe_request(encrypted: str, signed: str | None = None, nonce: str = "42", app: str = SAFE) -> InboundRequest:
    timestamp = str(int(NOW.timestamp()))
    query = {
        "signature": oa_signature(TOKEN, timestamp, nonce),
        "msg_signature": oa_msg_signature(TOKEN, timestamp, nonce, encrypted if signed is None else signed),
        "encrypt_type": "aes",
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return InboundRequest("wechat_oa", "POST", envelope(encrypted), NOW, f"req-s{nonce}", key=app, query=query)


class MemoryArchive(RawArchive):
    def __init__(self) -> None:
        self.objects: dict[str, ArchivedRequest] = {}

    def archive(
        self, request_id: str, body: bytes, received_at: datetime, source_hint: str, meta: dict[str, str] | None = None
    ) -> str:
        key = f"raw/{source_hint}/{request_id}"
        self.objects[key] = ArchivedRequest(key, body, {"received-at": iso(received_at), **(meta or {})})
        return key

    def keys_between(self, source_hint: str, start: datetime, end: datetime) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(f"raw/{source_hint}/"))

    def read(self, key: str) -> ArchivedRequest:
        return self.objects[key]


class MemoryPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i, _ in enumerate(events)]


def replay(ports: Ports) -> ReplaySummary:
    hour = timedelta(hours=1)
    return replay_archive("wechat_oa", NOW - hour, NOW + hour, ports, lambda _s, _m: OfficialAccountConnector())


@pytest.fixture
def ports() -> Ports:
    return Ports(StaticSources(SOURCES), MemoryArchive(), MemoryLedger(), MemoryPublisher(), lambda _: "CN")


# ---- plain-text mode: one body per signed (timestamp, nonce) ----------------------------------------------------


def test_a_captured_plain_signature_cannot_carry_another_body(ports: Ports) -> None:
    # Given a push accepted with its signature
    first = receive(plain_request(push("subscribe.xml")), OfficialAccountConnector(), ports)
    assert first.result.accepted == 1
    # When the same signed query is sent again within the window with a different body
    forged = plain_request(push("unsubscribe.xml"))
    # Then it is refused before it is archived, and nothing more is published
    archived = len(ports.archive.objects)  # type: ignore[attr-defined]
    with pytest.raises(AuthenticationError, match="already used"):
        receive(forged, OfficialAccountConnector(), ports)
    assert len(ports.archive.objects) == archived  # type: ignore[attr-defined]
    assert len(ports.publisher.published) == 1  # type: ignore[attr-defined]
    # And a second try of the forged body is refused as well (a refused body never counts as a retry)
    with pytest.raises(AuthenticationError, match="already used"):
        receive(forged, OfficialAccountConnector(), ports)


def test_wechats_own_retry_of_the_same_push_is_accepted_once(ports: Ports) -> None:
    # Given a push (WeChat resends the same request when we answer after 5 s)
    request = plain_request(push("menu_click.xml"), nonce="777")
    first = receive(request, OfficialAccountConnector(), ports)
    # When it arrives again, identical
    again = receive(request, OfficialAccountConnector(), ports)
    # Then both are answered success and the event is published once
    assert first.reply is not None and again.reply is not None and again.reply.body == "success"
    assert (first.result.accepted, again.result.accepted, again.result.duplicates) == (1, 0, 1)


def test_each_nonce_is_its_own_claim(ports: Ports) -> None:
    receive(plain_request(push("subscribe.xml"), nonce="1"), OfficialAccountConnector(), ports)
    second = receive(plain_request(push("unsubscribe.xml"), nonce="2"), OfficialAccountConnector(), ports)
    assert second.result.accepted == 1


def test_a_timestamp_outside_the_window_is_refused(ports: Ports) -> None:
    stale = plain_request(push(), at=NOW - timedelta(seconds=301))
    with pytest.raises(AuthenticationError, match="replay window"):
        receive(stale, OfficialAccountConnector(), ports)


def test_a_msg_signature_in_the_query_does_not_skip_the_claim_of_a_plain_text_account(ports: Ports) -> None:
    # Given a plain-text account and a push accepted with its signature
    receive(plain_request(push("subscribe.xml"), nonce="5"), OfficialAccountConnector(), ports)
    # When the signed query is reused with another body and safe-mode parameters added by the sender
    forged = plain_request(push("unsubscribe.xml"), nonce="5")
    query = {**forged.query, "msg_signature": "x", "encrypt_type": "aes"}
    # Then it is still refused: the mode is the account's configuration, not the request's
    with pytest.raises(AuthenticationError, match="already used"):
        receive(
            InboundRequest("wechat_oa", "POST", forged.body, NOW, "r", key=PLAIN, query=query),
            OfficialAccountConnector(),
            ports,
        )


def test_the_url_check_claims_nothing(ports: Ports) -> None:
    request = plain_request(b"", method="GET")
    receive(request, OfficialAccountConnector(), ports)
    receive(request, OfficialAccountConnector(), ports)
    assert ports.ledger.status == {}  # type: ignore[attr-defined]


# ---- safe mode: msg_signature binds the encrypted body ------------------------------------------------------------


def test_a_safe_mode_push_is_decrypted_archived_in_clear_and_replayed(ports: Ports) -> None:
    # Given a subscribe push encrypted for the safe-mode account and signed with msg_signature
    request = safe_request(encrypt(push("subscribe.xml")))
    # When it is received
    received = receive(request, OfficialAccountConnector(), ports)
    # Then its event is published, and the archive holds the decrypted push
    assert received.result.accepted == 1 and received.reply is not None and received.reply.body == "success"
    [stored] = ports.archive.objects.values()  # type: ignore[attr-defined]
    assert stored.body == push("subscribe.xml")
    # And an archive replay maps it again without the key
    summary = replay_archive(
        "wechat_oa",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=1),
        ports,
        lambda _s, _m: OfficialAccountConnector(),
    )
    assert (summary.accepted, summary.failures) == (1, [])


def test_msg_signature_binds_the_body() -> None:
    # Given a msg_signature made for one encrypted body, sent with another
    request = safe_request(encrypt(push("unsubscribe.xml")), signed=encrypt(push("subscribe.xml")))
    # Then it is refused
    with pytest.raises(AuthenticationError, match="bad msg_signature"):
        OfficialAccountConnector().authenticate(request, SOURCES)


def test_a_push_encrypted_for_another_app_or_key_is_refused() -> None:
    connector = OfficialAccountConnector()
    for encrypted in (encrypt(push(), app_id="wx-someone-else"), encrypt(push(), key="Z" * 43)):
        request = safe_request(encrypted)
        connector.authenticate(request, SOURCES)  # the token signs it
        with pytest.raises(AuthenticationError):
            connector.unseal(request, SOURCES)


def test_a_safe_mode_account_refuses_plain_pushes_but_answers_the_url_check() -> None:
    # Given the safe-mode account / When a plain-text push arrives (signed with the token) / Then it is refused
    plain = plain_request(push())
    with pytest.raises(AuthenticationError, match="safe mode"):
        OfficialAccountConnector().authenticate(
            InboundRequest("wechat_oa", "POST", plain.body, NOW, "r", key=SAFE, query=plain.query), SOURCES
        )
    # And the URL check (always signed the plain-text way) still passes
    check = InboundRequest("wechat_oa", "GET", b"", NOW, "r", key=SAFE, query={**plain.query, "echostr": "e"})
    assert OfficialAccountConnector().authenticate(check, SOURCES).brand_id == "demo-brand"


def test_decryption_follows_wechats_layout() -> None:
    # 16 random bytes + 4-byte big-endian length + XML + app id, PKCS#7 to 32 bytes, AES-256-CBC, IV = key[:16]
    xml = b"<xml><MsgType>text</MsgType></xml>"
    assert decrypt_push(encrypt(xml), AES_KEY, SAFE) == xml
    assert len(base64.b64decode(encrypt(xml))) % 32 == 0


@pytest.mark.parametrize(
    "app",
    [
        {"kind": "official_account", "token": "t", "encoding_aes_key": "too-short"},
        {"kind": "mini_program", "secret": "s", "encoding_aes_key": AES_KEY},
    ],
    ids=["malformed-key", "no-token-to-go-with"],
)
def test_a_bad_encoding_aes_key_fails_the_config_load(app: dict[str, str]) -> None:
    with pytest.raises(SourcesConfigError, match="encoding_aes_key"):
        parse_sources({"wechat": {"wx-1": {"brand_id": "demo-brand", **app}}})


def test_replay_maps_plain_bodies_without_claiming_nonces(ports: Ports) -> None:
    # Given an archived plain-text push
    receive(plain_request(push("scan.xml"), nonce="9"), OfficialAccountConnector(), ports)
    claims = dict(ports.ledger.status)  # type: ignore[attr-defined]
    # When the archive is replayed twice
    for _ in range(2):
        summary = replay_archive(
            "wechat_oa",
            NOW - timedelta(hours=1),
            NOW + timedelta(hours=1),
            ports,
            lambda _s, _m: OfficialAccountConnector(),
        )
        assert (summary.accepted, summary.failures) == (1, [])
    # Then no nonce was claimed again (replay maps, it does not authenticate)
    assert {k for k in ports.ledger.status if k.startswith("wechat-nonce")} == {  # type: ignore[attr-defined]
        k for k in claims if k.startswith("wechat-nonce")
    }
