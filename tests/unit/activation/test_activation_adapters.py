"""The two adapters against their fakes in-process (no socket): what each call sends, how each refusal maps onto
the port (for now / for good / no answer), that the token never shows in an error, and the retries."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cdp.activation.ocean_engine import OceanEngine
from cdp.activation.ocean_engine import error_name as ocean_error
from cdp.activation.ocean_engine import transient as ocean_transient
from cdp.activation.ports import AdPlatformNoAnswer, AdPlatformRefused, Backoff, RetryingAdPlatform
from cdp.activation.tencent_ads import TencentAds, clip
from cdp.activation.tencent_ads import error_name as tencent_error
from cdp.activation.tencent_ads import transient as tencent_transient
from cdp.connectors.ad_accounts import OceanEngineAccount, TencentAdsAccount
from cdp.shared.http import HttpAnswer, HttpTransport, HttpUnreachable
from cdp_local.fakes.ocean_engine import FakeOceanEngine
from cdp_local.fakes.tencent_ads import FakeTencentAds

PHONES = ["+8613800138000", "+8613900139000", "+8613700137000"]


def _tencent(fake: FakeTencentAds, transport: HttpTransport | None = None, **account: object) -> TencentAds:
    return TencentAds(TencentAdsAccount.model_validate(fake.account(**account)), transport or fake.transport())


def _ocean(fake: FakeOceanEngine, transport: HttpTransport | None = None) -> OceanEngine:
    return OceanEngine(OceanEngineAccount.model_validate(fake.account()), transport or fake.transport())


# ---- Tencent Ads -------------------------------------------------------------------------------------------------


def test_tencent_creates_a_customer_file_audience_and_appends_md5_hashes() -> None:
    fake = FakeTencentAds()
    platform = _tencent(fake)
    # When an audience is created and a file of three hashed phones uploaded
    audience = platform.create_audience("winter_buyers 20261210 and a long tail", "cdp activation x")
    hashes = [h for h in (platform.identifier(p) for p in PHONES) if h]
    file_id = platform.upload(audience, hashes)
    # Then the fake holds the hashes (never a phone) in that audience, sent as HASH_MOBILE_PHONE, APPEND
    assert fake.audience_ids(audience) == set(hashes)
    (sent,) = fake.files
    assert (str(sent.file_id), sent.user_id_type, sent.operation_type) == (file_id, "HASH_MOBILE_PHONE", "APPEND")
    assert not any("138" in i for i in sent.ids)
    assert fake.audiences[int(audience)]["name"] == "winter_buyers 20261210 and a long"[:32]
    assert platform.complete(audience, [file_id], "n", "d") == audience


def test_names_are_clipped_to_their_byte_limits_on_a_character_boundary() -> None:
    assert clip("冬季蛋糕" * 5, 32) == "冬季蛋糕冬季蛋糕冬季"  # 10 characters of 3 bytes: 30 of the 32
    assert len(clip("a" * 40, 32)) == 32


@pytest.mark.parametrize(
    ("code", "transient", "name"),
    [
        (10000, True, "tencent_10000"),
        (11017, True, "tencent_11017"),
        (30051, True, "tencent_30051"),
        (11000, False, "credentials_rejected"),
        (11002, False, "credentials_rejected"),
        (11014, False, "not_allowed"),
        (11018, False, "quota_exceeded"),
        (31033, False, "tencent_31033"),
    ],
)
def test_tencent_codes_map_to_for_now_or_for_good(code: int, transient: bool, name: str) -> None:
    fake = FakeTencentAds()
    fake.refuse_next(code, "频次超限")
    # When the platform answers `code` / Then the port's error says whether a retry can help, and why
    with pytest.raises(AdPlatformRefused) as refused:
        _tencent(fake).create_audience("n", "d")
    assert (refused.value.permanent, refused.value.code) == (not transient, name)
    assert tencent_transient(code) is transient and tencent_error(code) == name


def test_an_expired_tencent_token_is_refused_for_good_without_showing_the_token() -> None:
    fake = FakeTencentAds()
    fake.expire_token()
    with pytest.raises(AdPlatformRefused) as refused:
        _tencent(fake).create_audience("n", "d")
    assert refused.value.code == "credentials_rejected" and refused.value.permanent
    assert "code 11000" in str(refused.value)
    assert fake.access_token not in str(refused.value)


def test_each_tencent_call_has_a_fresh_nonce_and_a_current_timestamp() -> None:
    fake = FakeTencentAds()
    platform = _tencent(fake)
    # Given two calls in the same second / Then neither is refused as a replayed nonce
    audience = platform.create_audience("a", "d")
    platform.upload(audience, ["0" * 32])
    platform.upload(audience, ["1" * 32])
    assert len(fake.files) == 2


def _answer(status: int, body: bytes) -> HttpTransport:
    def send(method: str, url: str, headers: Mapping[str, str], payload: bytes) -> HttpAnswer:
        return HttpAnswer(status, body)

    return send


def _unreachable(sent: bool | None) -> HttpTransport:
    def send(method: str, url: str, headers: Mapping[str, str], payload: bytes) -> HttpAnswer:
        raise HttpUnreachable(url, f"timed out ({url})", sent)

    return send


@pytest.mark.parametrize(
    ("transport", "error", "permanent"),
    [
        (_answer(502, b"<html>bad gateway</html>"), AdPlatformRefused, False),
        (_answer(429, b""), AdPlatformRefused, False),
        (_answer(403, b"forbidden"), AdPlatformRefused, True),
        (_answer(200, b"not json"), AdPlatformNoAnswer, False),
        (_answer(200, b'{"code": 0, "data": {}}'), AdPlatformNoAnswer, False),  # success without the id
        (_unreachable(False), AdPlatformRefused, False),
        (_unreachable(None), AdPlatformNoAnswer, False),
    ],
)
def test_answers_that_are_not_the_apis_map_by_what_may_have_happened(
    transport: HttpTransport, error: type[Exception], permanent: bool
) -> None:
    fake = FakeTencentAds()
    for platform in (_tencent(fake, transport), _ocean(FakeOceanEngine(), transport)):
        with pytest.raises(error) as raised:
            platform.upload("1", ["0" * 64])
        assert getattr(raised.value, "permanent", None) is permanent
        # And the URL (Tencent's carries the token) is never in the message
        assert fake.access_token not in str(raised.value) and "access_token" not in str(raised.value)


# ---- Ocean Engine ------------------------------------------------------------------------------------------------


def test_ocean_engine_uploads_dmp_files_then_creates_the_data_source_from_them() -> None:
    fake = FakeOceanEngine()
    platform = _ocean(fake)
    hashes = [h for h in (platform.identifier(p) for p in PHONES) if h]
    # When two files are uploaded and the data source created from both
    assert platform.create_audience("n", "d") is None
    paths = [platform.upload(None, hashes[:2]), platform.upload(None, hashes[2:])]
    source = platform.complete(None, paths, "winter_buyers 20261210 and more", "cdp")
    # Then the data source holds the three SHA-256 hashes as MOBILE_HASH_SHA256 items
    assert {(i.data_type, i.id) for i in fake.data_source_ids(source)} == {(6, h) for h in hashes}
    assert fake.data_sources[source]["name"] == "winter_buyers 20261210 and mor"  # 30 characters


@pytest.mark.parametrize(
    ("code", "transient", "name"),
    [
        (40100, True, "oceanengine_40100"),
        (50000, True, "oceanengine_50000"),
        (40102, False, "credentials_rejected"),
        (40105, False, "credentials_rejected"),
        (40001, False, "oceanengine_40001"),
    ],
)
def test_ocean_engine_codes_map_to_for_now_or_for_good(code: int, transient: bool, name: str) -> None:
    fake = FakeOceanEngine()
    fake.refuse_next(code)
    with pytest.raises(AdPlatformRefused) as refused:
        _ocean(fake).upload(None, ["a" * 64])
    assert (refused.value.permanent, refused.value.code) == (not transient, name)
    assert ocean_transient(code) is transient and ocean_error(code) == name


def test_an_expired_ocean_engine_token_is_refused_for_good() -> None:
    fake = FakeOceanEngine()
    fake.expire_token()
    with pytest.raises(AdPlatformRefused) as refused:
        _ocean(fake).upload(None, ["a" * 64])
    assert refused.value.code == "credentials_rejected" and fake.access_token not in str(refused.value)


# ---- retries -----------------------------------------------------------------------------------------------------


def test_refusals_for_now_are_retried_and_those_for_good_are_not() -> None:
    fake = FakeTencentAds()
    waits: list[float] = []
    platform = RetryingAdPlatform(_tencent(fake), Backoff(attempts=3, waits_s=(0.5, 2.0)), waits.append)
    # Given a rate limit twice, then an answer / Then the third attempt creates it, after 0.5 s and 2 s
    fake.refuse_next(11017, times=2)
    assert platform.create_audience("n", "d")
    assert waits == [0.5, 2.0]
    # And a rate limit three times gives up with the platform's code
    fake.refuse_next(11017, times=3)
    with pytest.raises(AdPlatformRefused, match="11017"):
        platform.create_audience("n", "d")
    # And an expired token is not retried at all
    waits.clear()
    fake.expire_token()
    with pytest.raises(AdPlatformRefused):
        platform.create_audience("n", "d")
    assert waits == []


def test_an_upload_without_an_answer_is_sent_again_but_a_create_is_not() -> None:
    fake = FakeTencentAds()
    calls: list[str] = []
    lost = {"upload": 1, "create": 1}

    def flaky(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        kind = "upload" if "custom_audience_files" in url else "create"
        calls.append(kind)
        answer = fake.transport()(method, url, headers, body)
        if lost[kind]:
            lost[kind] -= 1
            raise HttpUnreachable(url, "read timed out", sent=None)  # done at the platform, the answer lost
        return answer

    platform = RetryingAdPlatform(_tencent(fake, flaky), Backoff(waits_s=(0.0,)), lambda _: None)
    # When the create's answer is lost / Then it is not repeated (a second audience would be made)
    with pytest.raises(AdPlatformNoAnswer):
        platform.create_audience("n", "d")
    assert calls == ["create"] and len(fake.audiences) == 1
    # When an upload's answer is lost / Then it is sent again: the audience holds each id once
    (audience,) = fake.audiences
    platform.upload(str(audience), ["a" * 32])
    assert calls == ["create", "upload", "upload"]
    assert fake.audience_ids(audience) == {"a" * 32}
