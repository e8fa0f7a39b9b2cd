"""The moto internals our local patches replace or rely on, pinned by the shape of their source.

A patch that replaces a moto function copies its behaviour; if a moto upgrade changes that function, the copy may
silently answer differently from moto (and from AWS). So every patch names the moto functions it stands in for or
calls into, with a digest of their source (its syntax tree: formatting and comments do not count), and refuses to
install when one differs. After a moto upgrade: re-read each named function, adjust the patch, then print the new
digests with `python -m cdp_local.runtime.moto_guard` and paste them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import moto

VERIFIED_MOTO = "5.2.5"  # the moto version the pinned digests were taken from


class MotoShapeChanged(RuntimeError):
    """A moto function a local patch relies on is not the one the patch was written against."""


@dataclass(frozen=True)
class Reliance:
    """One moto function (or property, or class attribute) a patch replaces or calls, and its expected digest."""

    target: str  # "module:Qualified.name"
    digest: str


def resolve(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = inspect.getattr_static(obj, part) if isinstance(obj, type) else getattr(obj, part)
    return obj


_digests: dict[int, tuple[Any, str]] = {}  # id -> (the object, kept alive so the id stays its own; its digest)


def digest_of(obj: Any) -> str:
    """sha256 of the function's syntax tree (a property: its getter); a plain value: of its repr. Functions and
    classes are remembered (reading their source is ~10 ms each and every runtime start checks them all)."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or isinstance(obj, property | staticmethod | classmethod)):
        return _digest(obj)
    known = _digests.get(id(obj))
    if known is None or known[0] is not obj:
        known = _digests[id(obj)] = (obj, _digest(obj))
    return known[1]


def _digest(obj: Any) -> str:
    if isinstance(obj, property):
        obj = obj.fget
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    obj = inspect.unwrap(obj)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        text = ast.dump(ast.parse(textwrap.dedent(inspect.getsource(obj))))
    else:
        text = repr(obj)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check(patch: str, reliances: Iterable[Reliance]) -> None:
    """Raise `MotoShapeChanged` naming the moto version, the function and the patch when a digest differs."""
    changed = []
    for reliance in reliances:
        try:
            found = digest_of(resolve(reliance.target))
        except (AttributeError, ImportError, OSError, TypeError) as exc:
            changed.append(f"{reliance.target} (not found: {exc})")
            continue
        if found != reliance.digest:
            changed.append(f"{reliance.target} (digest {found}, expected {reliance.digest})")
    if changed:
        raise MotoShapeChanged(
            f"moto {moto.__version__} is not the moto {VERIFIED_MOTO} that the local patch {patch!r} was written "
            f"against: {'; '.join(changed)}. Re-read these functions in moto, adapt the patch in "
            "local/runtime/, then update the digests (python -m cdp_local.runtime.moto_guard prints them)."
        )


def current_digests(targets: Iterable[str]) -> Mapping[str, str]:
    return {target: digest_of(resolve(target)) for target in targets}


if __name__ == "__main__":  # pragma: no cover - a maintenance aid after a moto upgrade
    from cdp_local.runtime.moto_hotspots import guarded

    for name, reliances in guarded().items():
        print(name)
        for target, digest in current_digests(r.target for r in reliances).items():
            print(f'    Reliance("{target}", "{digest}"),')
