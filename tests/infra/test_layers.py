"""The Lambda layers and code asset built without Docker: sizes, contents, handler resolution, caching.

The first run downloads the pinned wheels from the package index; later runs hit the stamp cache under .build/.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdp import topology
from infra import layers

pytestmark = pytest.mark.xdist_group("cdk")


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return layers.build_all()


def _python312() -> str | None:
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(  # noqa: S603 - interpreters found on this machine, fixed script
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    return None


def test_every_layer_and_every_function_bundle_fits_the_unzipped_limit(built: dict[str, Path]) -> None:
    # Given the built layers / Then each one, and each function's code + all its layers, stays under 250 MB unzipped
    sizes = {name: layers.dir_size(path) for name, path in built.items()}
    for name, size in sizes.items():
        assert size < layers.LAYER_UNZIPPED_LIMIT_BYTES, f"{name}: {size / 2**20:.1f} MB"
    for spec in topology.FUNCTIONS:
        total = sizes["code"] + sum(sizes[layer] for layer in spec.layers)
        assert total < layers.LAYER_UNZIPPED_LIMIT_BYTES, f"{spec.key}: {total / 2**20:.1f} MB"


def test_layers_never_ship_boto3_and_hold_only_their_closure(built: dict[str, Path]) -> None:
    for layer in layers.THIRD_PARTY_LAYERS:
        site = built[layer.name] / "python"
        installed = {
            layers.normalize(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for p in site.glob("*.dist-info")
        }
        # Then the layer holds exactly its declared closure, pinned versions included, and no SDK
        assert installed == set(layer.closure)
        assert not (site / "boto3").exists() and not (site / "botocore").exists()
        pins = layers.read_lock()
        for dist in site.glob("*.dist-info"):
            name, version = dist.name.removesuffix(".dist-info").rsplit("-", 1)
            assert pins[layers.normalize(name)] == version, dist.name


def test_ml_layer_is_stripped_of_tests_sources_and_stubs(built: dict[str, Path]) -> None:
    site = built["ml"] / "python"
    assert (site / "sklearn").is_dir()
    assert not list(site.rglob("tests"))
    assert not [p for pattern in ("*.pyx", "*.pxd", "*.pyi", "*.pyc") for p in site.rglob(pattern)]


def test_code_asset_and_domain_layer_resolve_every_handler(built: dict[str, Path]) -> None:
    # Given the staged asset / Then every handler string from topology names a module file and a function in it
    assert (built["domain"] / "python" / "cdp" / "topology.py").is_file()
    assert not list(built["code"].rglob("__pycache__"))
    for spec in topology.FUNCTIONS:
        module, attribute = spec.handler.rsplit(".", 1)
        source = built["code"].joinpath(*module.split(".")).with_suffix(".py")
        assert source.is_file(), spec.handler
        assert f"def {attribute}(" in source.read_text(encoding="utf-8"), spec.handler


def test_the_domain_layer_leaves_the_offline_engines_out(built: dict[str, Path]) -> None:
    # Given the built domain layer / Then the engines only local tools run are not in it, and their neighbours are
    package = built["domain"] / "python" / "cdp"
    for rel in layers.OFFLINE_MODULES:
        assert not (package / rel).exists(), rel
    assert (package / "identity" / "ports.py").is_file() and (package / "tags" / "history.py").is_file()


def test_layers_import_under_the_lambda_python(built: dict[str, Path], tmp_path: Path) -> None:
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 interpreter on this machine")
    # Given only the layers on the path (as /opt/python on Lambda) / When CPython 3.12 imports them / Then it works
    path = os.pathsep.join(str(built[name] / "python") for name in ("domain", "deps", "ml"))
    script = (
        "import numpy, scipy.sparse.csgraph, sklearn.ensemble, joblib, pydantic, aws_lambda_powertools, phonenumbers\n"
        "import email_validator, cdp.topology, cdp.settings, cdp.ingest.events, cdp.profile.models\n"
        "import cdp.identity.ports, cdp.identity.service, cdp.tags.service  # with the offline engines left out\n"
        "import cdp.identity.bulk, cdp.identity.history, cdp.tags.backfill  # the history import's engines\n"
        "import sklearn; print(sklearn.__version__)\n"
    )
    result = subprocess.run(  # noqa: S603 - fixed interpreter and script
        [python, "-c", script],
        env={"PYTHONPATH": path, "PATH": os.defpath, "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == layers.read_lock()["scikit-learn"]


def test_the_warehouse_layer_writes_parquet_under_the_lambda_python(built: dict[str, Path], tmp_path: Path) -> None:
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 interpreter on this machine")
    # Given the export function's layers only (domain, deps, warehouse) / When CPython 3.12 writes and reads Parquet
    path = os.pathsep.join(str(built[name] / "python") for name in topology.WAREHOUSE_EXPORT.layers)
    script = (
        "import duckdb, cdp.warehouse.parquet  # the writer and its row shaping\n"
        "con = duckdb.connect(config={'home_directory': '.', 'temp_directory': '.'})\n"
        "con.execute(\"COPY (SELECT 42 AS x) TO 'x.parquet' (FORMAT PARQUET, COMPRESSION ZSTD)\")\n"
        "print(duckdb.__version__, con.execute(\"SELECT x FROM read_parquet('x.parquet')\").fetchone()[0])\n"
    )
    result = subprocess.run(  # noqa: S603 - fixed interpreter and script
        [python, "-c", script],
        env={"PYTHONPATH": path, "PATH": os.defpath, "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    # Then it works with no download (Parquet is built into the wheel), with the pinned version
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [layers.read_lock()["duckdb"], "42"]


def test_unchanged_inputs_skip_the_rebuild(built: dict[str, Path]) -> None:
    # Given built layers / When built again with the same inputs / Then no directory is replaced
    before = {name: path.stat().st_ino for name, path in built.items()}
    again = layers.build_all()
    assert {name: path.stat().st_ino for name, path in again.items()} == before


def test_a_missing_pin_fails_before_pip_runs(tmp_path: Path) -> None:
    # Given a lock file without scikit-learn / When the ml layer is built / Then it fails naming the missing pin
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6\nscipy==1.17.1\n", encoding="utf-8")
    with pytest.raises(layers.LayerBuildError, match="scikit-learn"):
        layers.build_third_party_layer(layers.ML_LAYER, lock_file=lock, force=True)


def test_app_runs_as_a_script_from_the_infra_directory() -> None:
    # Given `cd infra && python app.py`, as the CDK CLI runs it (infra/cdk.json)
    # When the script imports CDK and parses its arguments / Then it gets that far
    infra_dir = layers.ROOT / "infra"
    result = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=infra_dir, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--outdir" in result.stdout


RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py")


def test_every_handler_imports_with_only_its_layers_and_what_the_runtime_ships(
    built: dict[str, Path], tmp_path: Path
) -> None:
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 interpreter on this machine")
    # Given what the python3.12 runtime ships beside the code (boto3 and its dependencies, pure Python: this
    # environment's copies stand in for them), and no site-packages at all (-S)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    for name in RUNTIME_PACKAGES:
        (runtime / name).symlink_to(site / name)
    by_layers: dict[tuple[str, ...], list[str]] = {}
    for spec in topology.FUNCTIONS:
        by_layers.setdefault(spec.layers, []).append(spec.handler.rsplit(".", 1)[0])
    for names, modules in by_layers.items():
        path = os.pathsep.join([str(built["code"]), *(str(built[name] / "python") for name in names), str(runtime)])
        # When CPython 3.12 imports each of their handler modules (module-level code runs: the Tracer, the resolvers)
        result = subprocess.run(  # noqa: S603 - fixed interpreter, the handlers topology names
            [python, "-S", "-c", "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)", *modules],
            env={
                "PYTHONPATH": path,
                "PATH": os.defpath,
                "PYTHONDONTWRITEBYTECODE": "1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_TRACE_DISABLED": "true",
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        # Then every one loads (a module only a developer's environment has would fail it here, not on AWS)
        assert result.returncode == 0, (names, result.stderr[-2000:])
