"""Hashing and the files' formats: known MD5/SHA-256 values (computed with coreutils' md5sum/sha256sum, and the
vectors Tencent's customer-file documentation gives), the DMP protobuf lines read back by the fake's own decoder,
and the multipart body read back by the fake's own parser."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from cdp.activation.hashing import (
    idfa_md5,
    imei_md5,
    is_md5_hex,
    is_sha256_hex,
    mainland_mobile,
    oaid_md5,
    phone_md5,
    phone_sha256,
)
from cdp.activation.ocean_engine import IDS_PER_LINE, dmp_file, dmp_line, id_item
from cdp.activation.wire import FilePart, multipart, zipped
from cdp.identifiers.model import normalize_phone
from cdp_local.fakes.forms import form_fields, unzip_one
from cdp_local.fakes.ocean_engine import DmpItem, parse_dmp_line

# printf '%s' 13800138000 | md5sum / sha256sum
PHONE_MD5 = "7945bd83237335e5376ff44d62e4f0ae"
PHONE_SHA256 = "a6942f9771d67f34034d2f1926988ed3fad3bf1b4e7cedb9a31f31398dea43bc"


@pytest.mark.parametrize("written", ["13800138000", "+86 138 0013 8000", "0086-138-0013-8000", "+8613800138000"])
def test_a_mainland_mobile_is_hashed_as_its_11_digits_whatever_way_it_was_written(written: str) -> None:
    # Given a number as a channel wrote it, normalized to E.164 as profiles keep it
    e164 = normalize_phone(written)
    # Then both platforms' hashes are of the 11 digits, lower-case hex (never the +86)
    assert mainland_mobile(e164) == "13800138000"
    assert phone_md5(e164) == PHONE_MD5
    assert phone_sha256(e164) == PHONE_SHA256
    assert is_md5_hex(PHONE_MD5) and is_sha256_hex(PHONE_SHA256)


@pytest.mark.parametrize("e164", ["+14155550123", "+85291234567", "+861012345678", "+8601012345678", "13800138000"])
def test_numbers_outside_mainland_mobiles_have_no_hash(e164: str) -> None:
    # Given a US, a Hong Kong, a Beijing landline or a non-E.164 value / Then neither platform can match it
    assert phone_md5(e164) is None
    assert phone_sha256(e164) is None


def test_device_ids_follow_tencents_published_examples() -> None:
    # Tencent's customer-file table: an upper-case IDFA with its dashes, a lower-case IMEI
    assert idfa_md5("FF1999CD-7177-4937-A474-74937A102630") == "2c010ed96aef2fc34983e1e7e9176b7e"
    assert idfa_md5("ff1999cd-7177-4937-a474-74937a102630") == "2c010ed96aef2fc34983e1e7e9176b7e"
    assert imei_md5("A000002C9060F7") == "f2d5a650733ca8c27d502b1c08da14e5"
    # And a zeroed IDFA / OAID (tracking limited) is no identifier at all
    assert idfa_md5("00000000-0000-0000-0000-000000000000") is None
    assert oaid_md5("00000000-0000-0000-0000-000000000000") is None
    assert imei_md5("12345") is None


def test_an_id_item_is_the_proto2_wire_format_of_its_two_fields() -> None:
    # Given dataType 6 and a 64-character id
    encoded = id_item(6, PHONE_SHA256)
    # Then: field 2 varint (0x10 06), field 3 length-delimited (0x1a, 64 = 0x40, the bytes)
    assert encoded == b"\x10\x06\x1a\x40" + PHONE_SHA256.encode()


def test_dmp_lines_hold_at_most_10000_ids_and_read_back_with_an_independent_decoder() -> None:
    ids = [f"{i:064x}" for i in range(IDS_PER_LINE + 5)]
    # When a file of 10,005 ids is written
    lines = dmp_file(6, ids).decode().splitlines()
    # Then it is two lines (10,000 + 5), each the base64 of a DmpData the fake's own protobuf reader parses
    assert len(lines) == 2
    parsed = [item for line in lines for item in parse_dmp_line(line)]
    assert parsed == [DmpItem(6, i) for i in ids]
    assert base64.b64decode(lines[1])[:2] == b"\x0a\x44"  # idList, 68 bytes: 2 + 2 + 64
    with pytest.raises(ValueError, match="10000"):
        dmp_line(6, ids)


def test_a_multipart_body_with_a_zipped_file_reads_back_byte_for_byte() -> None:
    content = zipped("audience.txt", b"\n".join([PHONE_MD5.encode()] * 3) + b"\n")
    # When a form with two text fields and the zip is encoded
    body, content_type = multipart(
        {"account_id": "25610", "user_id_type": "HASH_MOBILE_PHONE"}, FilePart("file", "a.zip", content)
    )
    # Then a server's parser finds each field, the file's name, and the zip's one text file
    fields = form_fields(content_type, body)
    assert fields["account_id"] == (b"25610", None)
    assert fields["file"] == (content, "a.zip")
    assert unzip_one(fields["file"][0]).splitlines() == [PHONE_MD5.encode()] * 3
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == ["audience.txt"]
        assert archive.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
