"""The console in a real browser (Debian's chromium through Playwright) against the demo brand on the local server:
what a marketer and an analyst do, checked against the API's own answers. The last test measures each page's load
time (bench-output/console.json) and saves a screenshot of each page (bench-output/console/)."""

from __future__ import annotations

import json
import re
import statistics
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.browser.conftest import ADMIN, ANALYST, BENCH_DIR, DEMO_CUSTOMERS, MARKETER, Site
from tests.browser.steps import METRICS, active, choose_brand, number, sign_in, visit

_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?(?:e[+-]\d+)?")


def _told_in_chinese(shown: str, api: str) -> bool:
    """The API's English verdict told in Chinese: Chinese words, and every number of it one the API's sentence has
    (the points, the interval, p; or the groups' sizes)."""
    numbers = set(_NUMBER.findall(shown))
    return bool(re.search(r"[\u4e00-\u9fff]", shown)) and bool(numbers) and numbers <= set(_NUMBER.findall(api))


# ---- sign-in -------------------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_and_the_right_one_lands_on_home(page: Any, site: Site) -> None:
    # Given the sign-in page (the browser speaks English; nobody is signed in)
    page.goto(site.url + "/")
    page.wait_for_selector("#username")
    assert page.url.endswith("/console/")
    # When the marketer gives a wrong password
    page.fill("#username", MARKETER[0])
    page.fill("#password", "not-the-password")
    page.press("#password", "Enter")
    # Then the error says so and the page stays on sign-in
    page.wait_for_selector("#sign-in-error:not(:empty)")
    assert page.inner_text("#sign-in-error") == "Unknown user or wrong password."
    assert page.evaluate("sessionStorage.getItem('cdp.session')") is None
    # And an empty user name is flagged next to its field
    page.fill("#username", "")
    page.fill("#password", "x")
    page.press("#password", "Enter")
    assert page.inner_text("#username-error") == "Required"
    assert page.get_attribute("#username", "aria-invalid") == "true"

    # When the right password is given
    page.fill("#username", MARKETER[0])
    page.fill("#password", MARKETER[1])
    page.press("#password", "Enter")
    page.wait_for_selector("main[data-ready='home']")
    # Then home opens in the account's language (Chinese), naming the user; the token is kept for the tab only
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("main h1") == "营销概览"
    assert page.inner_text(".user-name") == MARKETER[2]
    assert json.loads(page.evaluate("sessionStorage.getItem('cdp.session')"))["token"].count(".") == 2
    assert page.evaluate("Object.keys(localStorage).every(k => !String(localStorage.getItem(k)).includes('eyJ'))")
    # And the home cards show the API's figures
    shown = page.evaluate(METRICS)
    report = site.api("/v1/analytics/lifecycle", brand_id=site.brand)
    last = max(r["month"] for r in report["rows"])
    assert number(shown["lifecycle.total"]) == sum(r["persons"] for r in report["rows"] if r["month"] == last)
    campaigns = site.api("/v1/campaigns", brand_id=site.brand)["campaigns"]
    assert number(shown["campaigns.live"]) == sum(c["status"] == "live" for c in campaigns)
    # And the model registry (deployment-wide: it refuses brand-scoped users) is a card the role cannot see, not
    # a broken page
    assert page.locator("#card-models [data-state='forbidden']").count() == 1
    assert page.locator("#card-models").inner_text().startswith("模型")


def test_keyboard_only_sign_in_and_navigation(page: Any, site: Site) -> None:
    # Given the sign-in page with nothing focused
    page.goto(site.url + "/")
    page.wait_for_selector("#username")
    page.evaluate("document.activeElement.blur()")
    # When the analyst tabs to the user name, types, tabs to the password, types and presses Enter
    for _ in range(10):
        page.keyboard.press("Tab")
        if active(page)["id"] == "username":
            break
    assert active(page)["id"] == "username"
    page.keyboard.type(ANALYST[0])
    page.keyboard.press("Tab")
    assert active(page)["id"] == "password"
    page.keyboard.type(ANALYST[1])
    page.keyboard.press("Tab")
    button = active(page)
    assert (button["tag"], button["type"], button["text"]) == ("BUTTON", "submit", "Sign in")
    assert button["outline"] != "none"  # focus is visible
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    # Then home opens, in English (the analyst's language)
    page.wait_for_selector("main[data-ready='home']")
    assert page.inner_text("main h1") == "Programme overview"
    # And the navigation is reached and followed with the keyboard alone (back from the page's heading)
    for _ in range(20):
        page.keyboard.press("Shift+Tab")
        if active(page)["text"] == "Campaigns":
            break
    assert active(page)["tag"] == "A" and active(page)["outline"] != "none"
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-page='campaigns'][data-ready]")


def test_a_rejected_token_takes_the_user_back_to_sign_in(page: Any, site: Site) -> None:
    # Given a signed-in analyst whose token the API no longer accepts (its signature altered)
    sign_in(page, site, ANALYST)
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('cdp.session')); "
        "s.token = s.token.slice(0, -6) + 'AAAAAA'; sessionStorage.setItem('cdp.session', JSON.stringify(s)); }"
    )
    # When a page asks the API for data (reloaded: nothing the tab kept from before answers for the API)
    page.evaluate("location.hash = '#/models'")
    page.reload()
    # Then the 401 ends the session: sign-in again, saying why
    page.wait_for_selector("#username")
    assert "Your session has ended" in page.inner_text(".notice")
    assert page.evaluate("sessionStorage.getItem('cdp.session')") is None
    # And signing in again returns to the page the user was on
    page.fill("#username", ANALYST[0])
    page.fill("#password", ANALYST[1])
    page.press("#password", "Enter")
    page.wait_for_selector("main[data-ready='models']")


def test_cognito_sign_in_sends_initiate_auth_and_uses_the_id_token(page: Any, site: Site) -> None:
    # Given the console configured as on AWS (a Cognito user pool; CloudFront's CSP lets the page reach it), with
    # Cognito answered here: the ID token it returns is a real local one, so the API accepts it
    endpoint = "https://cognito-idp.eu-west-1.amazonaws.com/"
    config = {"auth": {"kind": "cognito", "region": "eu-west-1", "client_id": "abc123client"}, "api": ""}
    request = urllib.request.Request(  # noqa: S310 - the local server, over http
        site.url + "/console/sign-in",
        data=json.dumps({"username": ANALYST[0], "password": ANALYST[1]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:  # noqa: S310 - the local server
        id_token = json.load(answer)["id_token"]
    seen: list[dict[str, Any]] = []

    def document(route: Any) -> None:
        response = route.fetch()
        csp = response.headers["content-security-policy"] + f"; connect-src 'self' {endpoint}"
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": csp})

    def cognito(route: Any) -> None:
        seen.append({"headers": route.request.headers, "body": json.loads(route.request.post_data or "{}")})
        if seen[-1]["body"]["AuthParameters"]["PASSWORD"] != ANALYST[1]:
            route.fulfill(
                status=400,
                content_type="application/x-amz-json-1.1",
                body=json.dumps({"__type": "NotAuthorizedException", "message": "Incorrect username or password."}),
            )
            return
        result = {"AuthenticationResult": {"IdToken": id_token, "ExpiresIn": 3600, "TokenType": "Bearer"}}
        route.fulfill(status=200, content_type="application/x-amz-json-1.1", body=json.dumps(result))

    page.route("**/console/", document)
    page.route("**/console/config.json", lambda route: route.fulfill(json=config))
    page.route(endpoint, cognito)
    page.goto(site.url + "/console/")
    page.wait_for_selector("#username")
    # When a wrong password, then the right one, are given
    page.fill("#username", ANALYST[0])
    page.fill("#password", "wrong-password")
    page.press("#password", "Enter")
    page.wait_for_selector("#sign-in-error:not(:empty)")
    assert page.inner_text("#sign-in-error") == "Unknown user or wrong password."
    page.fill("#password", ANALYST[1])
    page.press("#password", "Enter")
    page.wait_for_selector("main[data-ready='home']")
    # Then each went to Cognito's InitiateAuth as USER_PASSWORD_AUTH, and the ID token signed the user in
    assert len(seen) == 2
    assert seen[1]["headers"]["x-amz-target"] == "AWSCognitoIdentityProviderService.InitiateAuth"
    assert seen[1]["headers"]["content-type"] == "application/x-amz-json-1.1"
    assert seen[1]["body"] == {
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": "abc123client",
        "AuthParameters": {"USERNAME": ANALYST[0], "PASSWORD": ANALYST[1]},
    }
    assert page.inner_text(".user-name") == ANALYST[2]


# ---- the pages -------------------------------------------------------------------------------------------------


def test_find_a_customer_by_phone_and_see_their_timeline_and_tags(page: Any, site: Site) -> None:
    # Given the marketer on the customers page
    sign_in(page, site, MARKETER)
    visit(page, "#/customers", "customers")
    page.select_option("#identifier-type", "phone")
    # When a malformed phone is looked up, the API's error shows next to the value
    page.fill("#identifier-value", "12345")
    page.press("#identifier-value", "Enter")
    page.wait_for_selector("#identifier-value-error:not(:empty)")
    assert "not a valid phone number" in page.inner_text("#identifier-value-error")
    assert page.get_attribute("#identifier-value", "aria-invalid") == "true"
    # When the phone is typed as the customer says it (11 digits, no country code)
    page.fill("#identifier-value", site.phone.removeprefix("+86"))
    page.press("#identifier-value", "Enter")
    page.wait_for_selector("main[data-ready='customer']")
    # Then their 360 view opens, with the phone as stored (E.164)
    assert page.url.endswith(f"#/customers/{site.person_id}")
    assert site.phone in page.inner_text("#section-identifiers")
    profile = site.api(f"/v1/profiles/{site.person_id}")
    assert page.inner_text("main h1") == profile["traits"]["name"]
    assert number(page.evaluate(METRICS)["profile.orders"]) == profile["activity"]["order_count"]
    # And the timeline's first page is the API's, newest first
    timeline = site.api(f"/v1/profiles/{site.person_id}/timeline", limit="20")
    items = page.locator("#section-timeline .timeline-item")
    shown = [items.nth(i).get_attribute("data-event-type") for i in range(items.count())]
    assert shown == [entry["event"]["event_type"] for entry in timeline["entries"]]
    # And every tag the person holds is listed with its value
    tags = page.inner_text("#section-tags")
    for name in profile["tags"]:
        assert name in tags
    # And the tags of a past day come from the tag history
    page.fill("#tags-as-of", "2026-01-31")
    page.click("#section-tags form button")
    page.wait_for_selector("#section-tags .tags-past table, #section-tags .tags-past [data-state]")
    assert page.locator("#section-tags .tags-past [data-state='error']").count() == 0


def test_a_campaign_shows_the_api_results(page: Any, site: Site) -> None:
    # Given the demo's campaign with a holdout, as the API reports it
    results = site.api(f"/v1/campaigns/{site.campaign_id}/results", brand_id=site.brand)
    summary = results["run"]["summary"]
    funnel = summary["funnel"]
    # When the marketer opens it
    sign_in(page, site, MARKETER)
    visit(page, f"#/campaigns/{site.campaign_id}", "campaign")
    shown = page.evaluate(METRICS)
    # Then the funnel's numbers are the API's
    for key in ("eligible", "selected", "treatment", "holdout", "offers_redeemed", "purchased", "credited_orders"):
        assert number(shown[f"funnel.{key}"]) == funnel[key], key
    for step, tally in funnel["steps"].items():
        assert number(shown[f"funnel.steps.{step}.sent"]) == tally["sent"], step
    # And the ROI is the API's, with its definition beside it, and the money as the API formats it
    assert float(shown["roi"].replace(",", "")) == round(summary["roi"], 2)
    assert shown["roi_definition"] == summary["roi_definition"]
    assert shown["incremental_revenue"] == summary["display"]["incremental_revenue"]
    # And conversion against the holdout is drawn with its intervals and the API's verdict
    assert _told_in_chinese(shown["verdict"], summary["conversion_lift"]["verdict"])
    assert page.locator("#campaign-results figure.intervals .whisker").count() >= 3
    assert page.locator("#campaign-runs tbody tr").count() == len(
        site.api(f"/v1/campaigns/{site.campaign_id}/runs", brand_id=site.brand)["runs"]
    )

    # Given the cart-recovery journey, as the API reports it
    journey = site.api(f"/v1/campaigns/{site.journey_id}/results", brand_id=site.brand)["journey"]
    # When it is opened
    visit(page, f"#/campaigns/{site.journey_id}", "campaign")
    shown = page.evaluate(METRICS)
    # Then its entries, conversion and per-step funnel are the API's
    assert number(shown["journey.entered"]) == sum(journey["entered"].values())
    assert number(shown["journey.sent"]) == journey["messages"].get("sent", 0)
    for step in journey["steps"]:
        assert number(shown[f"journey.steps.{step['step']}.reached"]) == step["reached"], step["step"]
    assert _told_in_chinese(shown["verdict"], journey["lift"]["verdict"])


def test_switching_the_language_shows_chinese_and_is_remembered(page: Any, site: Site) -> None:
    # Given the analyst signed in, in English
    sign_in(page, site, ANALYST)
    assert page.inner_text("main h1") == "Programme overview"
    # When they switch to Chinese
    page.click("button.lang[lang='zh-CN']")
    page.wait_for_selector("main[data-ready='home']")
    # Then the layout and the page speak Chinese
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.locator(".sidebar nav a").all_inner_texts() == [
        "首页",
        "客户",
        "营销活动",
        "人群",
        "标签目录",
        "权益与预算",
        "模型",
    ]
    assert page.inner_text("main h1") == "营销概览"
    assert page.inner_text(".topbar > button") == "退出登录"
    assert page.inner_text(".brand-form label") == "品牌"
    # And the choice outlives a reload
    page.reload()
    page.wait_for_selector("main[data-ready='home']")
    assert page.inner_text("main h1") == "营销概览"
    # And English comes back the same way
    page.click("button.lang[lang='en']")
    page.wait_for_selector("main[data-ready='home']")
    assert page.inner_text("main h1") == "Programme overview"


def test_only_a_user_with_campaigns_write_sees_start_pause_resume(page: Any, site: Site) -> None:
    # Given the analyst (campaigns:read only), on the demo brand
    sign_in(page, site, ANALYST)
    choose_brand(page, site.brand)
    # When they open the campaign and the live journey
    visit(page, f"#/campaigns/{site.campaign_id}", "campaign")
    assert page.locator("#campaign-results [data-metric='roi']").count() == 1
    # Then no action is offered
    assert page.locator("[data-action]").count() == 0
    visit(page, f"#/campaigns/{site.journey_id}", "campaign")
    assert page.locator("[data-action]").count() == 0

    # When the analyst signs out and the marketer (campaigns:write) signs in
    page.click(".topbar >> text=Sign out")
    page.wait_for_selector("#username")
    assert page.inner_text(".notice") == "You have signed out."
    page.fill("#username", MARKETER[0])
    page.fill("#password", MARKETER[1])
    page.press("#password", "Enter")
    page.wait_for_selector("main[data-ready]:not([data-ready='sign-in'])")
    # Then the campaign offers a run now (asking first) and the live journey a pause
    visit(page, f"#/campaigns/{site.campaign_id}", "campaign")
    page.click("[data-action='start']")
    planned = site.api(f"/v1/campaigns/{site.campaign_id}", brand_id=site.brand)["planned_sends"]
    assert f"{planned:,}" in page.inner_text(".confirm")
    page.click(".confirm button.secondary")  # cancelled: the shared demo keeps its one run
    assert page.locator(".confirm").count() == 0
    visit(page, f"#/campaigns/{site.journey_id}", "campaign")
    assert page.locator("[data-action='pause']").count() == 1
    assert page.locator("[data-action='start']").count() == 0

    # When the marketer pauses the cold-snap journey, then resumes it (it ends live, as the other tests expect)
    journey = "/v1/campaigns/demo_cold_snap"
    visit(page, "#/campaigns/demo_cold_snap", "campaign")
    page.click("[data-action='pause']")
    page.wait_for_selector("[data-action='resume']")
    # Then each change is the API's, and the page says what was done
    assert site.api(journey, brand_id=site.brand)["state"]["status"] == "paused"
    assert page.inner_text(".action-feedback") == "已暂停。"
    page.click("[data-action='resume']")
    page.wait_for_selector("[data-action='pause']")
    assert site.api(journey, brand_id=site.brand)["state"]["status"] == "live"


def test_a_report_still_running_is_polled_until_it_answers(page: Any, site: Site) -> None:
    # Given the lifecycle report answering 202 first (as Athena does while its query runs) with where to poll
    polled: list[str] = []

    def running(route: Any) -> None:
        answer = json.loads(route.fetch().text())
        location = f"/v1/analytics/lifecycle/queries/{answer['query_id']}?brand_id={answer['brand_id']}"
        body = {"report": "lifecycle", "brand_id": answer["brand_id"], "query_id": answer["query_id"]}
        route.fulfill(
            status=202, headers={"Location": location}, json={**body, "status": "running", "location": location}
        )

    page.route(re.compile(r"/v1/analytics/lifecycle\?"), running)
    page.on("request", lambda r: polled.append(r.url) if "/queries/" in r.url else None)
    # When the marketer opens home
    sign_in(page, site, MARKETER)
    # Then the card polled the query and shows its stages
    assert polled
    assert page.locator("#card-lifecycle [data-metric='lifecycle.total']").count() == 1


# ---- load times and screenshots ----------------------------------------------------------------------------------


def _open(page: Any, site: Site, where: str, ready: str) -> float:
    """Open a page as a link does (a fresh load: modules, config, strings, then every API call): ms to ready."""
    page.goto(f"{site.url}/console/{where}")
    page.reload()
    page.wait_for_selector(f"main[data-ready='{ready}']")
    return float(page.evaluate("n => performance.getEntriesByName('page:' + n).at(-1).duration", ready))


def _timings(page: Any, site: Site, where: str, ready: str, away: tuple[str, str], runs: int = 3) -> dict[str, Any]:
    """Opened fresh, and reached from another freshly loaded page (nothing the tab kept answers for the API)."""
    opened, navigated = [], []
    for _ in range(runs):
        opened.append(round(_open(page, site, where, ready), 1))
        _open(page, site, *away)
        navigated.append(round(visit(page, where, ready), 1))
    return {
        "open_median_ms": statistics.median(opened),
        "navigate_median_ms": statistics.median(navigated),
        "open_ms": opened,
        "navigate_ms": navigated,
    }


def test_page_load_times_and_screenshots(browser: Any, site: Site, screenshots: Path) -> None:
    # Given both users, each in their own tab (the marketer in Chinese, the analyst in English)
    timings: dict[str, dict[str, Any]] = {}
    model = next(m for m in site.api("/v1/models")["models"] if m["promoted"])

    def tab() -> Any:
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
        created = context.new_page()
        created.set_default_timeout(60_000)
        return created

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)

    marketer, analyst, admin = tab(), tab(), tab()
    marketer.goto(site.url + "/")
    marketer.wait_for_selector("#username")
    shot(marketer, "sign-in")
    sign_in(marketer, site, MARKETER)
    sign_in(analyst, site, ANALYST)
    choose_brand(analyst, site.brand)
    sign_in(admin, site, ADMIN)
    version = f"#/models/{model['model_name']}/{model['promoted']['version']}"
    # When each page is opened fresh and reached from another page, three times each
    for user, name, where, ready, picture in [
        (marketer, "home", "#/home", "home", "home-zh"),
        (marketer, "customers (search)", "#/customers", "customers", "customers-zh"),
        (marketer, "customer 360", f"#/customers/{site.person_id}", "customer", "customer-zh"),
        (marketer, "campaigns", "#/campaigns", "campaigns", "campaigns-zh"),
        (marketer, "campaign (run results)", f"#/campaigns/{site.campaign_id}", "campaign", "campaign-zh"),
        (marketer, "campaign (journey results)", f"#/campaigns/{site.journey_id}", "campaign", "journey-zh"),
        (marketer, "offers & budgets", "#/offers", "offers", "offers-zh"),
        (marketer, "audiences", "#/audiences", "audiences", "audiences-zh"),
        (
            marketer,
            "audience builder (winter_cake_sms)",
            "#/audiences/winter_cake_sms",
            "audience-builder",
            "audience-zh",
        ),
        (marketer, "tag catalog", "#/tags", "tags", "tags-zh"),
        (marketer, "campaign builder (new)", "#/campaigns/new", "campaign-builder", "campaign-new-zh"),
        (analyst, "home (analyst)", "#/home", "home", "home-en"),
        (analyst, "models", "#/models", "models", "models-en"),
        (analyst, "model version report", version, "model", "model-report-en"),
        (analyst, "customer 360 (analyst)", f"#/customers/{site.person_id}", "customer", "customer-en"),
        (analyst, "campaign (run results, analyst)", f"#/campaigns/{site.campaign_id}", "campaign", "campaign-en"),
        (admin, "settings", "#/settings", "settings", "settings-en"),
    ]:
        away = ("#/campaigns", "campaigns") if ready != "campaigns" else ("#/offers", "offers")
        timings[name] = _timings(user, site, where, ready, away)
        _open(user, site, where, ready)
        shot(user, picture)

    # Then every page was ready, and the figures are recorded with how they were taken
    BENCH_DIR.mkdir(exist_ok=True)
    record = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "what": "milliseconds to the page's ready marker (main[data-ready]: every section's API answers drawn). "
        "open: a fresh load of the page's URL, counted from the navigation (HTML, modules, config.json, strings.json, "
        "then the API calls); navigate: reached by a link from another freshly loaded page (the API calls only). "
        "Medians of 3.",
        "browser": f"Debian chromium {browser.version}, headless, 1366x900",
        "server": "LocalApiServer on moto in-process (one Python process; the runtime serializes API requests)",
        "demo": {
            "customers": DEMO_CUSTOMERS,
            "seconds": site.demo_seconds,
        },
        "pages": timings,
        "screenshots": sorted(p.name for p in screenshots.glob("*.png")),
    }
    (BENCH_DIR / "console.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    assert all(t["open_median_ms"] > 0 and t["navigate_median_ms"] > 0 for t in timings.values())
    marketer.context.close()
    analyst.context.close()


def test_a_user_of_every_brand_picks_one_of_the_brands_the_api_lists(page: Any, site: Site) -> None:
    # Given the analyst (no org scope) signed in
    sign_in(page, site, ANALYST)
    # Then the brand input offers the brands GET /v1/org/brands lists for them
    page.wait_for_selector("#brand-choices option", state="attached")
    offered = page.eval_on_selector_all("#brand-choices option", "os => os.map(o => o.value)")
    assert offered == [b["brand_id"] for b in site.api("/v1/org/brands")["brands"]]
    assert site.brand in offered
