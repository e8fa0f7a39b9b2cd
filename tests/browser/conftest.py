"""Browser fixtures: the demo brand served by `LocalApiServer` with console users, and Debian's chromium driven by
Playwright (`/usr/bin/chromium`: browsers are never downloaded; `.ci/run` installs chromium and fonts-noto-cjk).

The demo (300 customers) runs once for the package, into the runtime the server then serves, followed by the
warehouse export the nightly schedule would run (the home page's lifecycle report reads it). Tests share the
server's state: they only read, except where one says it changes something.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress

from cdp.org import ScopeRef
from cdp_local.console_users import ROLES, ConsoleUser, UsersFile, hash_password, save_users
from cdp_local.demo.catalog import BRAND_ID
from cdp_local.demo_job import run_demo
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_CUSTOMERS = 300
BENCH_DIR = Path(__file__).resolve().parents[2] / "bench-output"
MARKETER = ("mei", "mei-console-pw", "陈梅")  # the demo brand's marketer, Chinese by default
ANALYST = ("ana", "ana-console-pw", "Ana Lee")  # every brand (the model registry wants an unscoped user), English
OPERATOR = ("ops", "ops-console-pw", "Olu Ops")  # the demo brand's operator (identity:merge), English
HQ_MARKETER = ("hq", "hq-console-pw", "Hana Qiu")  # a marketer of every brand (audiences read them all), English
STORE_MARKETER = ("sh02", "sh02-console-pw", "Shu Zhang")  # a marketer of one store (no whole brand), English
ADMIN = ("root", "root-console-pw", "Ada Admin")  # every scope, every brand: the settings page's administrator


@dataclass
class Site:
    """The served demo and what the tests compare the pages with (read through the administrator's key)."""

    url: str
    runtime: LocalRuntime
    brand: str
    demo_seconds: float
    campaign_id: str  # the demo's scheduled campaign with a holdout
    journey_id: str
    person_id: str
    phone: str  # as the person's profile holds it (E.164)

    def api(self, path: str, **query: str) -> Any:
        """GET an API route as the local administrator (the figures a page must show)."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        answer = self.runtime.http("GET", target, b"", {"x-api-key": self.runtime.admin_key})
        assert answer.status == 200, (target, answer.status, answer.body[:300])
        return json.loads(answer.body)


def _users(path: Path) -> None:
    marketer = ConsoleUser(
        password=hash_password(MARKETER[1]),
        name=MARKETER[2],
        locale="zh",
        scopes=sorted(ROLES["marketer"]),
        scope=ScopeRef(brand_id=BRAND_ID),
    )
    analyst = ConsoleUser(password=hash_password(ANALYST[1]), name=ANALYST[2], scopes=sorted(ROLES["analyst"]))
    operator = ConsoleUser(
        password=hash_password(OPERATOR[1]),
        name=OPERATOR[2],
        scopes=sorted(ROLES["operator"]),
        scope=ScopeRef(brand_id=BRAND_ID),
    )
    hq_marketer = ConsoleUser(
        password=hash_password(HQ_MARKETER[1]), name=HQ_MARKETER[2], scopes=sorted(ROLES["marketer"])
    )
    store_marketer = ConsoleUser(
        password=hash_password(STORE_MARKETER[1]),
        name=STORE_MARKETER[2],
        scopes=sorted(ROLES["marketer"]),
        scope=ScopeRef(brand_id=BRAND_ID, store_id="sh02"),
    )
    users = {MARKETER[0]: marketer, ANALYST[0]: analyst, OPERATOR[0]: operator, HQ_MARKETER[0]: hq_marketer}
    users[STORE_MARKETER[0]] = store_marketer
    users[ADMIN[0]] = ConsoleUser(password=hash_password(ADMIN[1]), name=ADMIN[2], scopes=sorted(ROLES["admin"]))
    save_users(path, UsersFile(users=users))


def _a_customer(rt: LocalRuntime) -> tuple[str, str]:
    """A member of the demo's SMS audience with a name (they have a phone, tags, a timeline, often a coupon)."""
    headers = {"x-api-key": rt.admin_key}
    answer = rt.http("GET", "/v1/audiences/winter_cake_sms/preview?limit=20", b"", headers)
    assert answer.status == 200, answer.body[:300]
    for member in json.loads(answer.body)["members"]:
        profile = json.loads(rt.http("GET", f"/v1/profiles/{member['person_id']}", b"", headers).body)
        phones = [i["value"] for i in profile["identifiers"] if i["type"] == "phone"]
        if phones and profile["tags"] and profile["traits"].get("name"):
            return profile["person_id"], phones[0]
    raise AssertionError("no demo customer with a name, a phone and tags")


@pytest.fixture(scope="package")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it: "
            "apt-get install chromium fonts-noto-cjk); browsers are never downloaded"
        )
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture(scope="package")
def site(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("console")
    users_file = work / "console-users.json"
    _users(users_file)
    console = Console(quiet=True)
    with LocalRuntime() as rt:
        started = time.perf_counter()
        with Progress(console=console, disable=True) as progress:
            summary = run_demo(
                customers=DEMO_CUSTOMERS,
                seed=5,
                output=work / "demo",
                progress=progress,
                console=console,
                min_auc=0.0,  # a small brand: the pipeline, not the models' quality, is under test here
                runtime=rt,
            )
        demo_seconds = time.perf_counter() - started  # its last stage ran the warehouse export analytics reads
        person_id, phone = _a_customer(rt)
        server = LocalApiServer(rt, port=0, users_file=users_file).start()
        try:
            yield Site(
                url=server.url,
                runtime=rt,
                brand=BRAND_ID,
                demo_seconds=round(demo_seconds, 1),
                campaign_id=summary["campaign"]["summary"]["campaign_id"],
                journey_id="cart_recovery",
                person_id=person_id,
                phone=phone,
            )
        finally:
            server.stop()


@pytest.fixture(scope="package")
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (its own storage: nobody is signed in) that fails the test on a script error or a CSP refusal."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US", timezone_id="Asia/Shanghai")
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on(
        "console",
        lambda message: problems.append(f"console: {message.text}") if "Refused to" in message.text else None,
    )
    yield tab
    context.close()
    assert not problems, problems


@pytest.fixture(scope="package")
def screenshots() -> Path:
    folder = BENCH_DIR / "console"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
