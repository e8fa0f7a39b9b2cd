"""multipart/form-data bodies as a server reads them (the standard library's e-mail parser, not our encoder), and a
zip's single text file: what the ad platform fakes receive."""

from __future__ import annotations

import io
import zipfile


class FormError(ValueError):
    """The body is not the multipart form (or the zip) the platform expects."""


def form_fields(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """field name -> (its bytes, its filename or None), read by the boundary (RFC 7578) byte for byte."""
    kind, _, params = content_type.partition(";")
    boundary = next(
        (v.strip().strip('"') for k, _, v in (p.partition("=") for p in params.split(";")) if k.strip() == "boundary"),
        "",
    )
    if kind.strip().lower() != "multipart/form-data" or not boundary:
        raise FormError(f"expected multipart/form-data with a boundary, got {content_type!r}")
    delimiter = b"--" + boundary.encode()
    if not body.startswith(delimiter) or not body.rstrip(b"\r\n").endswith(delimiter + b"--"):
        raise FormError("the body does not start and end with the boundary")
    out: dict[str, tuple[bytes, str | None]] = {}
    for chunk in body.split(b"\r\n" + delimiter)[:-1]:
        chunk = chunk.removeprefix(delimiter).removeprefix(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise FormError("a part without its blank line after the headers")
        disposition = next(
            (
                line
                for line in head.decode("utf-8", "replace").split("\r\n")
                if line.lower().startswith("content-disposition:")
            ),
            "",
        )
        name = _param(disposition, "name")
        if name is None:
            raise FormError("a part without a name")
        out[name] = (content, _param(disposition, "filename"))
    return out


def _param(header: str, key: str) -> str | None:
    for piece in header.split(";")[1:]:
        k, _, v = piece.strip().partition("=")
        if k.lower() == key:
            return v.strip().strip('"')
    return None


def text(fields: dict[str, tuple[bytes, str | None]], name: str) -> str | None:
    found = fields.get(name)
    return found[0].decode("utf-8", "replace") if found is not None else None


def unzip_one(content: bytes) -> bytes:
    """The only file of a zip archive (or the bytes themselves when they are not a zip: a plain txt upload)."""
    if not content.startswith(b"PK"):
        return content
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise FormError(f"the zip holds {len(names)} files, expected one")
            return archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise FormError(f"not a zip archive: {exc}") from exc
