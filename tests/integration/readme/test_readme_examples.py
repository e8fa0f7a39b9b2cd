"""The README's examples, run as a newcomer runs them: in order, as one shell session, against a served runtime.

The README's `bash` blocks (and its Python example, saved to a file and run with the venv's python) become one script
run with `set -euo pipefail` from the repository root, as the README says to start; its setup block then moves to a
temporary directory, so every later example must work from elsewhere. The test serves the runtime itself (on a free
port, which replaces 8787 in the examples), so the lines that start a server or build the venv are left out, and the
blocks that need what one process cannot give are skipped by name (a second server, the demo, AWS).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp import topology
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
BASH = shutil.which("bash") or "/bin/bash"
SAMPLE_ORDER_AT = datetime.fromisoformat(
    json.loads((REPO / "events" / "canonical" / "order_placed.v1.json").read_text())["occurred_at"]
)
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)

# Blocks not run, each for its reason (a block is recognised by the start of one of its lines).
SKIPPED = {
    "make demo": "the demo and the test suite are not examples of the served API",
    "CDP_API_KEYS_FILE=": "a second server needs a second runtime, and one process holds one (it is tried by hand)",
    "make layers": "deploys to AWS",
}
# Lines left out of the blocks that are run: the test builds nothing and serves the runtime itself.
DROPPED = re.compile(r"^(make install\b|cdp serve &)")

pytestmark = pytest.mark.xdist_group("readme")  # one runtime per process


def readme_script(text: str, url: str, workdir: Path) -> tuple[str, list[str]]:
    """The script of the runnable examples, in README order, and the skipped blocks' reasons."""
    lines, skipped = ["set -euo pipefail"], []
    for number, (language, body) in enumerate(_BLOCK.findall(text)):
        body = body.replace("http://127.0.0.1:8787", url)
        if language == "python":
            example = workdir / f"readme_example_{number}.py"
            example.write_text(body, encoding="utf-8")
            lines.append(f'python "{example}"')
            continue
        if language != "bash":
            continue
        starts = [line.strip() for line in body.splitlines()]
        reason = next((why for marker, why in SKIPPED.items() if any(x.startswith(marker) for x in starts)), None)
        if reason is not None:
            skipped.append(reason)
            continue
        lines += [line for line in body.splitlines() if not DROPPED.match(line.strip())]
    return "\n".join(lines) + "\n", skipped


@pytest.fixture(scope="module")
def served() -> Iterator[LocalApiServer]:
    # the import and campaign state machines are the ones the examples run; port 0 keeps clear of a developer's
    # cdp serve
    machines = {topology.IMPORT_MACHINE.key, topology.HISTORY_IMPORT_MACHINE.key, topology.CAMPAIGN_MACHINE.key}
    with LocalRuntime(state_machines=machines) as rt, LocalApiServer(rt, port=0) as server:
        yield server


def test_the_readme_examples_run_in_order_from_another_directory(served: LocalApiServer, tmp_path: Path) -> None:
    # Given the README's examples as one script, the venv's bin first on PATH (what `source .venv/bin/activate` does;
    # the script sources it too when the checkout has one), and mktemp's directories under tmp_path
    script, skipped = readme_script(README.read_text(encoding="utf-8"), served.url, tmp_path)
    assert sorted(skipped) == sorted(SKIPPED.values())  # each skip still matches a block: none vanished unnoticed
    if not (REPO / ".venv" / "bin" / "activate").exists():
        script = script.replace("source .venv/bin/activate", ":")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
        "CDP_URL": served.url,  # the cdp commands' --url default, as 8787 is in the curl lines
        "COLUMNS": "200",
    }
    for name in ("CDP_API_KEY", "CDP_ADMIN_API_KEY", "CDP_API_KEYS_FILE"):  # the README's defaults, not the caller's
        env.pop(name, None)
    # the console's users: where the README's `cdp console add-user` writes them is where the server reads them
    served.users_file = env["CDP_CONSOLE_USERS_FILE"] = tmp_path / "console-users.json"
    before = _repo_outputs()
    # When it runs from the repository root, as the README's setup block is run
    result = subprocess.run(  # noqa: S603 - our own script
        [BASH, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    out = result.stdout + result.stderr
    # Then every command succeeded (set -e, pipefail) and each example did what the README says it does
    assert result.returncode == 0, f"{out[-4000:]}\n--- script ---\n{script}"
    assert out.count('"accepted":1') >= 2, out  # the sample order and the mini-program shopper
    assert "store:sh01" in out, out  # the store key sees the sample customer (same brand and store as the key)
    assert "merge by local-admin" in out and "unmerge of" in out, out
    assert '"user_id","value":"user-42"' in out.replace(" ", ""), out  # the Segment SDK's user, through curl
    assert re.search(r"accepted\s+│\s+6\s+│", out) and re.search(r"member_card\s+│ M20240001", out), out  # import
    assert re.search(r"rows\s+│\s+465\s+│", out) and re.search(r"tag history entries\s+│\s+[1-9]", out), out  # history
    # the warehouse export of that brand's history, counted by type with DuckDB over the copied Parquet
    assert re.search(r"demo-outlet: [1-9]\d* profiles", out) and re.search(r"order_placed\s+│\s+[1-9]", out), out
    # the same history's repeat-purchase curve over HTTP: DuckDB over the exported Parquet in the served bucket
    assert re.search(r"duckdb \[\(1, [1-9]\d*\), \(2, \d+\), \(3, \d+\)\]", out), out
    assert "created active_buyers" in out and "created winter_cake_sms" in out, out
    # the coupon: issued (50.00 reserved), then redeemed by the till's order that used its code (50.00 spent)
    assert "50.00 CNY reserved, 0.00 CNY spent" in out and "0.00 CNY reserved, 50.00 CNY spent" in out, out
    assert re.search(r"redeemed\s+│", out), out
    # the claim link: its page answers without a key; the red packet claimed from it is recorded and said not paid out
    # (no WeChat Pay merchant locally); claimed again, it is the same entry
    assert "Claim now" in out and "not been paid out in cash yet" in out and "Already claimed" in out, out
    # the sample order and the till order earned club points (1 a yuan paid); the burn took 100 of them
    assert re.search(r"club: 596 points \(278 until 2027-04-01\S+, 318 until 2028-01-01\S+\); level basic", out), out
    assert "-100 points; balance 496" in out, out
    # winter_cake_sms: the sample customer, who opted in to SMS, while her order is under a year old (as the README
    # says; after that her lifecycle is churned)
    expected = 1 if datetime.now(UTC) - SAMPLE_ORDER_AT < timedelta(days=365) else 0
    assert f"{expected} members (exact" in out, out
    # And the import's files went to the directory the examples moved to, none into the repository
    assert list(tmp_path.glob("tmp*/import-output/*.rejects.csv")), out
    assert _repo_outputs() == before


def _repo_outputs() -> set[Path]:
    return set((REPO / "import-output").glob("*"))


def test_the_script_builder_runs_bash_and_python_blocks_and_skips_by_marker(tmp_path: Path) -> None:
    # Given README text with a setup block, a skipped block, a python block and a yaml block
    text = (
        "```bash\nmake install\ncdp serve &\ncurl http://127.0.0.1:8787/x\n```\n"
        "```bash\nCDP_API_KEYS_FILE=k cdp serve --port 8788 &\n```\n"
        "```python\nprint('http://127.0.0.1:8787')\n```\n"
        "```yaml\nid: a\n```\n"
    )
    # When the script is built for a server on another port
    script, skipped = readme_script(text, "http://127.0.0.1:9999", tmp_path)
    # Then the server and install lines are gone, the port is replaced, python runs from a file, yaml is not run
    assert script.splitlines()[1:] == ["curl http://127.0.0.1:9999/x", f'python "{tmp_path / "readme_example_2.py"}"']
    assert skipped == [SKIPPED["CDP_API_KEYS_FILE="]]
    assert (tmp_path / "readme_example_2.py").read_text() == "print('http://127.0.0.1:9999')\n"
