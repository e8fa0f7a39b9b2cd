"""The identifiers an ad platform matches, normalized and hashed as each platform's documentation says.

Mobile numbers: both platforms match mainland China mobile numbers as their 11 digits (no +86, no spaces) hashed:
Tencent Ads `HASH_MOBILE_PHONE` is the MD5 of them ("加密前为11位的纯数字串"), Ocean Engine's DMP `MOBILE_HASH_SHA256`
the SHA-256; both in lowercase hex. A number outside mainland China (or not a mobile) has no such form: the person is
counted as having no usable identifier.

Device ids, per Tencent's customer-file table: `HASH_IDFA` is the MD5 of the IDFA in upper case with its dashes
(FF1999CD-7177-4937-A474-74937A102630 -> 2c010ed96aef2fc34983e1e7e9176b7e), `HASH_IMEI` the MD5 of the 14-15
character IMEI in lower case (a000002c9060f7 -> f2d5a650733ca8c27d502b1c08da14e5), `HASH_OAID` the MD5 of the OAID as
the device reports it. These are here for the upload's id types; profiles keep device ids without their kind (an
IDFA, an OAID and an SDK's anonymous id look alike), so activation sends mobile numbers only (README: Known limits).
"""

from __future__ import annotations

import hashlib
import re

_E164_MAINLAND_MOBILE = re.compile(r"^\+861[3-9][0-9]{9}$")
_IDFA = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_IMEI = re.compile(r"^[0-9A-Fa-f]{14,15}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def mainland_mobile(e164: str) -> str | None:
    """The 11 digits of a mainland China mobile number given in E.164 (+861XXXXXXXXXX), else None."""
    return e164[3:] if _E164_MAINLAND_MOBILE.match(e164) else None


def phone_md5(e164: str) -> str | None:
    """Tencent Ads HASH_MOBILE_PHONE."""
    digits = mainland_mobile(e164)
    return md5_hex(digits) if digits else None


def phone_sha256(e164: str) -> str | None:
    """Ocean Engine DMP MOBILE_HASH_SHA256 (and Tencent's SHA256_MOBILE_PHONE)."""
    digits = mainland_mobile(e164)
    return sha256_hex(digits) if digits else None


def idfa_md5(idfa: str) -> str | None:
    """Tencent Ads HASH_IDFA: upper case, dashes kept. None for a zeroed IDFA (tracking limited) or no IDFA."""
    if not _IDFA.match(idfa) or not idfa.strip("0-"):
        return None
    return md5_hex(idfa.upper())


def imei_md5(imei: str) -> str | None:
    """Tencent Ads HASH_IMEI: the 14 or 15 characters in lower case."""
    return md5_hex(imei.lower()) if _IMEI.match(imei) and imei.strip("0") else None


def oaid_md5(oaid: str) -> str | None:
    """Tencent Ads HASH_OAID: the OAID as reported (an all-zero OAID means the user limited tracking)."""
    value = oaid.strip()
    return md5_hex(value) if value and value.strip("0-") else None


def is_md5_hex(value: str) -> bool:
    return bool(_HEX32.match(value))


def is_sha256_hex(value: str) -> bool:
    return bool(_HEX64.match(value))
