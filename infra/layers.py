"""Build the Lambda layers and the function code asset without Docker (`python -m infra.layers`).

Lambda target: runtime python3.12 on x86_64. x86_64 rather than arm64 because the scientific wheels
(scikit-learn, scipy, numpy) are published for manylinux x86_64 first and this is what the CI machine runs,
so a layer built here is byte-for-byte what a developer can inspect locally.

Outputs, all under `.build/` (git-ignored):
  layers/domain/python/cdp/...   the domain package, copied from layers/domain/cdp
  layers/deps/python/...         powertools (+ the X-Ray SDK its Tracer imports), pydantic, phonenumbers,
                                 email-validator, jinja2, defusedxml (+ closure)
  layers/ml/python/...           scikit-learn, scipy, numpy, joblib, threadpoolctl, stripped to fit 250 MB
  layers/warehouse/python/...    duckdb (the warehouse export writes Parquet with it, the analytics API's DuckDB
                                 engine runs reports with it; ~70 MB)
  code/functions/...             the thin handlers, so `functions.<name>.handler.lambda_handler` resolves

Third-party layers are installed by pip for the Lambda platform (`--platform manylinux_2_28_x86_64`, wheels only)
with versions pinned by requirements.lock. boto3/botocore never go into a layer: the runtime ships them.
Each output carries a stamp of its inputs; an unchanged input set skips the rebuild.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cdp.topology import LayerName

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / ".build"
LAYERS_DIR = BUILD_DIR / "layers"
CODE_DIR = BUILD_DIR / "code"
LOCK_FILE = ROOT / "requirements.lock"
DOMAIN_SRC = ROOT / "layers" / "domain" / "cdp"
FUNCTIONS_SRC = ROOT / "functions"

LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
LAYER_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024  # Lambda: function + all its layers, unzipped
FORBIDDEN_IN_LAYERS = frozenset({"boto3", "botocore", "s3transfer"})
_STAMP_VERSION = "1"  # bump when the build recipe itself changes

_PYCACHE_ONLY = (("__pycache__",), ("*.pyc",))
# Only what a running model never touches: test suites, Cython sources/headers, type stubs, caches.
_ML_STRIP = (("__pycache__", "tests"), ("*.pyc", "*.pyx", "*.pxd", "*.pyi"))


class LayerBuildError(RuntimeError):
    """A layer could not be built as specified (missing pin, unexpected package, pip failure)."""


@dataclass(frozen=True)
class ThirdPartyLayer:
    name: LayerName
    requirements: tuple[str, ...]  # top-level distributions; versions come from requirements.lock
    closure: frozenset[str]  # every distribution the layer may contain (normalized names)
    strip: tuple[tuple[str, ...], tuple[str, ...]] = _PYCACHE_ONLY  # (directory names, file globs) to delete
    # installed without their own dependencies: what they need beside the layer's closure, the runtime ships
    without_dependencies: tuple[str, ...] = ()


DEPS_LAYER = ThirdPartyLayer(
    name="deps",
    requirements=(
        "aws-lambda-powertools",
        "pydantic",
        "phonenumbers",
        "email-validator",
        "jinja2",
        "defusedxml",
        "cryptography",  # SNS signature checks (SES feedback), AES-GCM in tracked links
        "pyjwt",  # console users' ID tokens (RS256 through cryptography)
        "pyyaml",  # the tag catalog
        "tzdata",  # IANA zones for zoneinfo (campaign schedules): the runtime image need not carry them
        "wrapt",  # aws-xray-sdk's one dependency the runtime does not ship
    ),
    # Powertools' Tracer imports the X-Ray SDK as it is made (even with tracing disabled); the SDK's other dependency
    # is botocore, which the runtime ships and a layer must not carry
    without_dependencies=("aws-xray-sdk",),
    closure=frozenset(
        {
            "aws-lambda-powertools",
            "jmespath",
            "typing-extensions",
            "pydantic",
            "pydantic-core",
            "annotated-types",
            "typing-inspection",
            "phonenumbers",
            "email-validator",
            "dnspython",
            "idna",
            "jinja2",
            "markupsafe",
            "defusedxml",
            "cryptography",
            "cffi",
            "pyjwt",
            "pycparser",
            "pyyaml",
            "tzdata",
            "aws-xray-sdk",
            "wrapt",
        }
    ),
)
ML_LAYER = ThirdPartyLayer(
    name="ml",
    requirements=("scikit-learn", "joblib", "threadpoolctl"),
    closure=frozenset({"scikit-learn", "joblib", "numpy", "scipy", "threadpoolctl", "narwhals", "cloudpickle"}),
    strip=_ML_STRIP,
)
WAREHOUSE_LAYER = ThirdPartyLayer(
    name="warehouse",
    requirements=("duckdb",),  # the warehouse export's Parquet; the analytics API's reports (readers built in)
    closure=frozenset({"duckdb"}),
    strip=_ML_STRIP,  # its type stubs only
)
THIRD_PARTY_LAYERS = (DEPS_LAYER, ML_LAYER, WAREHOUSE_LAYER)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in lock_file.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalize(name.split("[", 1)[0])] = version.strip()
    return pins


def layer_dir(name: LayerName) -> Path:
    return LAYERS_DIR / name


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ---- stamps ---------------------------------------------------------------------------------------------------


def _tree_digest(src: Path, ignore: Iterable[str]) -> str:
    ignored = set(ignore)
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*")):
        if path.is_file() and not ignored.intersection(path.relative_to(src).parts) and path.suffix != ".pyc":
            digest.update(path.relative_to(src).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamp_path(out: Path) -> Path:
    return out.parent / f".{out.name}.inputs.sha256"


def _is_fresh(out: Path, inputs: str) -> bool:
    stamp = _stamp_path(out)
    return out.is_dir() and stamp.is_file() and stamp.read_text(encoding="utf-8") == inputs


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One builder per output at a time across processes (parallel test workers build the same layers)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _swap_in(tmp: Path, out: Path, inputs: str) -> None:
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    _stamp_path(out).write_text(inputs, encoding="utf-8")


def _fresh_tmp(out: Path) -> Path:
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


# ---- domain layer and code asset ------------------------------------------------------------------------------

_SOURCE_IGNORE = ("__pycache__", "tests", ".mypy_cache", ".pytest_cache")
# Batch tag SQL for DuckDB/Athena (~700 lines) only local tools run: no function imports it (an import-linter
# contract in pyproject.toml keeps it so), so it stays out of the domain layer. Bulk identity resolution ships: the
# history import function runs it.
OFFLINE_MODULES = ("tags/sql.py",)


def _copy_source(src: Path, out: Path, dest_rel: str, *, force: bool, leave_out: Iterable[str] = ()) -> Path:
    inputs = f"{_STAMP_VERSION}:{_tree_digest(src, _SOURCE_IGNORE)}:{','.join(leave_out)}"
    skipped = {src / rel for rel in leave_out}
    standard = shutil.ignore_patterns(*_SOURCE_IGNORE, "*.pyc")

    def ignore(directory: str, names: list[str]) -> set[str]:
        return set(standard(directory, names)) | {n for n in names if Path(directory) / n in skipped}

    with _exclusive(out):
        if not force and _is_fresh(out, inputs):
            return out
        tmp = _fresh_tmp(out)
        shutil.copytree(src, tmp / dest_rel, ignore=ignore)
        _swap_in(tmp, out, inputs)
    return out


def build_domain_layer(*, force: bool = False) -> Path:
    """Copy the `cdp` package to `.build/layers/domain/python/cdp` (Lambda puts `/opt/python` on sys.path)."""
    return _copy_source(DOMAIN_SRC, layer_dir("domain"), "python/cdp", force=force, leave_out=OFFLINE_MODULES)


def stage_function_code(*, force: bool = False) -> Path:
    """Stage `functions/` as `.build/code/functions` so dotted handler strings import from the asset root."""
    return _copy_source(FUNCTIONS_SRC, CODE_DIR, "functions", force=force)


# ---- third-party layers ---------------------------------------------------------------------------------------


def _pinned(layer: ThirdPartyLayer, pins: dict[str, str]) -> list[str]:
    missing = sorted(normalize(r) for r in layer.closure if normalize(r) not in pins)
    if missing:
        raise LayerBuildError(f"layer {layer.name}: no pin in requirements.lock for {', '.join(missing)}")
    return [f"{name}=={pins[normalize(name)]}" for name in layer.requirements]


def _closure_pins(layer: ThirdPartyLayer, pins: dict[str, str]) -> list[str]:
    return sorted(f"{name}=={pins[name]}" for name in map(normalize, layer.closure))


def _installed_distributions(site: Path) -> set[str]:
    return {normalize(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for p in site.glob("*.dist-info")}


def _strip(site: Path, dir_names: tuple[str, ...], file_globs: tuple[str, ...]) -> None:
    for name in dir_names:
        for path in sorted(site.rglob(name), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                shutil.rmtree(path)
    for pattern in file_globs:
        for path in site.rglob(pattern):
            if path.is_file():
                path.unlink()


def _pip_install(target: Path, requirements: list[str], constraints: list[str], no_deps: bool = False) -> None:
    constraints_file = target.parent / f".{target.parent.name}.constraints.txt"
    constraints_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
    platform_args = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--only-binary=:all:",
        *(["--no-deps"] if no_deps else []),
        *platform_args,
        "--constraint",
        str(constraints_file),
        *requirements,
    ]
    try:
        # The command is built from constants and lock pins, never from user input.
        subprocess.run(cmd, check=True)  # noqa: S603
    except subprocess.CalledProcessError as exc:
        raise LayerBuildError(f"pip failed for {target}: exit {exc.returncode}") from exc
    finally:
        constraints_file.unlink(missing_ok=True)


def build_third_party_layer(layer: ThirdPartyLayer, *, force: bool = False, lock_file: Path = LOCK_FILE) -> Path:
    pins = read_lock(lock_file)
    requirements = _pinned(layer, pins)
    bare = [f"{name}=={pins[normalize(name)]}" for name in layer.without_dependencies]
    constraints = _closure_pins(layer, pins)
    inputs = json.dumps(
        {
            "recipe": _STAMP_VERSION,
            "python": LAMBDA_PYTHON_VERSION,
            "platforms": LAMBDA_PLATFORMS,
            "requirements": requirements,
            "without_dependencies": bare,
            "constraints": constraints,
            "strip": layer.strip,
        },
        sort_keys=True,
    )
    out = layer_dir(layer.name)
    with _exclusive(out):
        if not force and _is_fresh(out, inputs):
            return out
        tmp = _fresh_tmp(out)
        site = tmp / "python"
        site.mkdir(parents=True)
        _pip_install(site, requirements, constraints)
        if bare:
            _pip_install(site, bare, constraints, no_deps=True)
        installed = _installed_distributions(site)
        if forbidden := installed & FORBIDDEN_IN_LAYERS:
            raise LayerBuildError(f"layer {layer.name}: {sorted(forbidden)} must come from the Lambda runtime")
        if unexpected := installed - layer.closure:
            raise LayerBuildError(f"layer {layer.name}: unexpected distributions {sorted(unexpected)}")
        _strip(site, *layer.strip)
        _swap_in(tmp, out, inputs)
    return out


def build_all(*, force: bool = False, third_party: bool = True) -> dict[str, Path]:
    """Build every layer and stage the function code; returns name -> directory."""
    built = {"domain": build_domain_layer(force=force), "code": stage_function_code(force=force)}
    if third_party:
        for layer in THIRD_PARTY_LAYERS:
            built[layer.name] = build_third_party_layer(layer, force=force)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    parser.add_argument("--no-third-party", action="store_true", help="only the domain layer and function code")
    args = parser.parse_args(argv)
    built = build_all(force=args.force, third_party=not args.no_third_party)
    for name, path in built.items():
        print(f"{name:7s} {dir_size(path) / 1024 / 1024:8.1f} MB  {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
