"""Schemathesis against `cdp serve`: the published OpenAPI document is fuzzed and no request may get a 5xx, an
undocumented status, a wrong content type or a body that breaks its documented schema.

The default run takes the fuzzing and stateful phases (about 600 requests, under a minute); CDP_FUZZ_FULL=1 adds
the coverage phase (about 9,500 requests, 9-10 minutes on 2 cores) and CDP_FUZZ_EXAMPLES raises the examples per
operation (default 10). The report is written to bench-output/schemathesis.txt."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime

pytestmark = pytest.mark.xdist_group("fuzz")
REPORT = Path(__file__).resolve().parents[3] / "bench-output" / "schemathesis.txt"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LocalRuntime, LocalApiServer]]:
    with LocalRuntime(state_machines=()) as runtime, LocalApiServer(runtime, port=0, drain="off") as srv:
        yield runtime, srv


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    server: tuple[LocalRuntime, LocalApiServer],
) -> None:
    runtime, srv = server
    basic = base64.b64encode(f"{runtime.write_key}:".encode()).decode()
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{srv.url}/v1/openapi.json",
        "--url",
        srv.url,
        "--checks",
        CHECKS,
        "--max-examples",
        os.environ.get("CDP_FUZZ_EXAMPLES", "10"),
        "--workers",
        "1",
        "--seed",
        "1",
        "--phases",
        "examples,coverage,fuzzing,stateful" if os.environ.get("CDP_FUZZ_FULL") else "examples,fuzzing,stateful",
        "-H",
        f"x-api-key: {runtime.admin_key}",
        "-H",
        f"Authorization: Basic {basic}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(done.stdout + done.stderr)
    summary = "\n".join(done.stdout.splitlines()[-30:])
    assert done.returncode == 0, f"schemathesis found failures (full report: {REPORT}):\n{summary}"
    assert "No issues found" in done.stdout or " passed" in done.stdout, summary
