"""The campaign builder in a real browser (issue 19): a marketer defines a one-off SMS campaign to the demo's saved
audience with one of its coupon offers, sees the API's errors next to the fields they concern, saves a draft, runs it
dry and reads the same figures the API's own dry run gives; an analyst may check and run dry but not save or start.

The campaigns these tests define are their own (new ids, left as drafts): the demo's campaigns are neither started
nor changed, and a draft reaches no other campaign's dry run (only scheduled and live ones overlap)."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from cdp_local.demo.catalog import BRAND_ID
from tests.browser.conftest import ANALYST, MARKETER, Site
from tests.browser.steps import METRICS, choose_brand, number, sign_in, visit

CAMPAIGN = "browser_builder_sms"  # defined by the marketer's test
ANALYSTS_CAMPAIGN = "browser_builder_read_only"  # defined through the API for the analyst's test
TAKEN = "browser_builder_taken"  # defined through the API: a new campaign may not reuse its id
AUDIENCE = "winter_cake_sms"  # the demo's saved audience (events/audiences/)
BODY = "{{ traits.name or 'Hello' }}, 20 yuan off a winter cake with code {{ offer.code }}. Reply TD to opt out"


def _post(site: Site, path: str, body: Any, **query: str) -> tuple[int, Any]:
    """POST to an API route as the local administrator (what the page must agree with)."""
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    answer = site.runtime.http("POST", target, json.dumps(body).encode(), {"x-api-key": site.runtime.admin_key})
    return answer.status, json.loads(answer.body)


def _coupon_offer(site: Site) -> str:
    offers = site.api("/v1/offers", brand_id=site.brand)["offers"]
    found = [o["offer"]["offer_id"] for o in offers if o["offer"].get("coupon") and o["status"] == "active"]
    assert found, "the demo defines an active coupon offer"
    return str(found[0])


def _draft(campaign_id: str, name: str) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "brand_id": BRAND_ID,
        "name": name,
        "audience": {"audience_id": AUDIENCE},
        "steps": [{"send": {"channel": "sms", "template": {"body": "Winter cakes are in. Reply TD to opt out"}}}],
        "budget": {"amount_minor": 10000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
    }


def _definition(page: Any) -> dict[str, Any]:
    """The definition the page holds, as its JSON view shows it."""
    return dict(json.loads(page.input_value("#builder-json")))


def _wait_redrawn(page: Any, action: Any) -> None:
    page.evaluate("document.querySelector('main').removeAttribute('data-ready')")
    action()
    page.wait_for_selector("main[data-ready='campaign-builder']")


def test_a_marketer_builds_checks_saves_and_dry_runs_a_campaign(page: Any, site: Site, screenshots: Path) -> None:
    # Given the demo's coupon offer, and a campaign id nobody uses yet
    offer = _coupon_offer(site)
    listed = site.api("/v1/campaigns", brand_id=site.brand)["campaigns"]
    assert CAMPAIGN not in {c["campaign_id"] for c in listed}

    # When the marketer (Chinese by default) opens Campaigns and clicks "New campaign"
    sign_in(page, site, MARKETER)
    visit(page, "#/campaigns", "campaigns")
    assert page.inner_text("#new-campaign") == "新建活动"
    _wait_redrawn(page, lambda: page.click("#new-campaign"))
    # Then the builder opens, empty, in Chinese, for a campaign run once when started
    assert page.url.endswith("#/campaigns/new")
    assert page.inner_text("main h1") == "新建活动"
    assert page.is_checked("#schedule-kind-none")
    assert page.is_disabled("#builder-dry-run-button")  # nothing saved to run dry yet

    # When the form is filled for a one-off SMS with the coupon, but with an empty message and a holdout of 150%
    page.fill("#field-campaign-id", CAMPAIGN)
    page.fill("#field-name", "Browser builder SMS")
    page.fill("#field-description", "A coupon for the winter cake range, defined in the console")
    page.fill("#field-audience-audience-id", AUDIENCE)  # typed, or picked from the saved audiences offered
    assert page.input_value("#field-steps-0-send-channel") == "sms"
    page.select_option("#field-steps-0-send-offer", offer)
    page.fill("#field-budget-amount-minor", "200")
    page.fill("#field-budget-cost-per-message-minor-sms", "0.05")
    page.fill("#field-max-recipients", "150")
    page.fill("#field-holdout", "150")
    # Then the JSON view holds the same definition
    drafted = _definition(page)
    assert drafted["audience"] == {"audience_id": AUDIENCE}
    assert drafted["steps"][0]["send"]["offer"] == {"offer_id": offer}
    assert drafted["budget"] == {"currency": "CNY", "cost_per_message_minor": {"sms": 5}, "amount_minor": 20000}
    assert drafted["holdout"] == 1.5 and drafted["max_recipients"] == 150

    # When it is validated
    page.click("#builder-validate")
    page.wait_for_selector("#builder-check [data-valid='false']")
    # Then each error the API names appears next to its field, marked invalid, in the API's words
    status, expected = _post(site, "/v1/campaigns/validate", drafted, brand_id=site.brand)
    assert status == 200 and not expected["valid"]
    by_field = {e["field"]: e["message"] for e in expected["errors"]}
    assert set(by_field) == {"steps[0].send.template.body", "holdout"}
    for field, control in [
        ("steps[0].send.template.body", "#field-steps-0-send-template-body"),
        ("holdout", "#field-holdout"),
    ]:
        assert page.get_attribute(control, "aria-invalid") == "true"
        assert page.inner_text(f"{control}-error") == by_field[field]
        assert f"{control[1:]}-error" in str(page.get_attribute(control, "aria-describedby"))
    # And the focus is on the first invalid field; nothing is listed as unplaced
    assert page.evaluate("document.activeElement.id") == "field-steps-0-send-template-body"
    assert page.locator("#builder-errors li").count() == 0
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshots / "campaign-builder-zh.png"), full_page=True)

    # When the language is switched to English, what was typed and the errors stay
    _wait_redrawn(page, lambda: page.click("button.lang[lang='en']"))
    assert page.inner_text("main h1") == "New campaign"
    assert page.input_value("#field-campaign-id") == CAMPAIGN
    assert page.get_attribute("#field-holdout", "aria-invalid") == "true"

    # When the two values are fixed, an edit clears its field's error at once
    page.fill("#field-steps-0-send-template-body", BODY)
    assert page.get_attribute("#field-steps-0-send-template-body", "aria-invalid") is None
    page.fill("#field-holdout", "10")
    # And it is validated again: valid, with the API's planned sends
    page.click("#builder-validate")
    page.wait_for_selector("#builder-check [data-valid='true']")
    status, checked = _post(site, "/v1/campaigns/validate", _definition(page), brand_id=site.brand)
    assert status == 200 and checked["valid"]
    assert number(page.inner_text("[data-metric='check.planned_sends']")) == checked["planned_sends"]
    assert page.locator("[aria-invalid='true']").count() == 0

    # When it is saved as a draft
    page.click("#builder-save")
    page.wait_for_selector("#builder-feedback [data-saved='1']")
    # Then the page becomes the campaign's editor, and the API holds version 1 as the form defined it
    assert page.url.endswith(f"#/campaigns/{CAMPAIGN}/edit")
    assert page.inner_text("main h1") == "Edit: Browser builder SMS"
    view = site.api(f"/v1/campaigns/{CAMPAIGN}", brand_id=site.brand)
    assert view["state"]["status"] == "draft" and view["version"]["version"] == 1
    stored = view["version"]["definition"]
    assert stored["audience"]["audience_id"] == AUDIENCE and stored["schedule"] is None
    assert stored["steps"][0]["send"]["offer"]["offer_id"] == offer
    assert stored["steps"][0]["send"]["template"]["body"] == BODY
    assert (stored["holdout"], stored["max_recipients"], stored["budget"]["amount_minor"]) == (0.1, 150, 20000)
    assert page.get_attribute("#field-campaign-id", "readonly") is not None  # a saved campaign keeps its id

    # When it is run dry
    page.click("#builder-dry-run-button")
    page.wait_for_selector("#builder-dry-run [data-metric='dry_run.eligible']")
    # Then the figures are the API's own dry run of version 1
    status, dry = _post(site, f"/v1/campaigns/{CAMPAIGN}/dry-run", {"version": 1}, brand_id=site.brand)
    assert status == 200, dry
    shown = page.evaluate(METRICS)
    for name in ("eligible", "selected", "treatment", "holdout", "capped_today", "unscored"):
        assert number(shown[f"dry_run.{name}"]) == dry[name], name
    assert dry["selected"] > 0 and dry["treatment"] + dry["holdout"] == dry["selected"]
    assert shown["dry_run.first_send_cost"] == f"{dry['first_send_cost_minor'] / 100:,.2f} CNY"
    assert shown["dry_run.follow_up_cost"] == f"{dry['follow_up_cost_at_most_minor'] / 100:,.2f} CNY"
    assert dry["first_send_cost_minor"] == dry["treatment"] * 5
    for day, sends in dry["sends_by_day"].items():
        assert number(shown[f"dry_run.sends_by_day.{day}"]) == sends
    assert page.locator("#builder-dry-run .bar-row").count() == len(dry["sends_by_day"])
    overlapping = page.eval_on_selector_all("#builder-dry-run td a", "links => links.map(a => a.textContent)")
    assert overlapping == [o["campaign_id"] for o in dry["overlaps"]]
    page.set_viewport_size({"width": 1366, "height": 2000})  # the panel beside the form fits the window's height
    page.locator("#builder-dry-run").screenshot(path=str(screenshots / "campaign-builder-dry-run.png"))
    page.screenshot(path=str(screenshots / "campaign-builder.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})

    # And the marketer may start it: Start asks first (cancelled here: the test sends nothing)
    assert page.is_visible("#builder-start")
    page.click("#builder-start")
    page.wait_for_selector("#builder-confirm")
    assert page.evaluate("document.activeElement.id") == "builder-confirm"
    page.click(".confirm-area .button.secondary")
    assert page.locator("#builder-confirm").count() == 0
    assert page.evaluate("document.activeElement.id") == "builder-start"
    assert site.api(f"/v1/campaigns/{CAMPAIGN}/runs", brand_id=site.brand)["runs"] == []

    # And the campaign's page links back to its editor
    visit(page, f"#/campaigns/{CAMPAIGN}", "campaign")
    _wait_redrawn(page, lambda: page.click("#edit-campaign"))
    assert page.input_value("#field-name") == "Browser builder SMS"


def test_a_new_campaign_with_an_id_in_use_is_refused_before_it_becomes_another_version(page: Any, site: Site) -> None:
    # Given a campaign of the brand (this test's own)
    status, answer = _post(site, "/v1/campaigns", _draft(TAKEN, "Already here"))
    assert status in (200, 201), answer
    before = site.api(f"/v1/campaigns/{TAKEN}", brand_id=site.brand)["state"]["latest_version"]
    # When the marketer's new campaign form is saved under the same id
    sign_in(page, site, MARKETER)
    visit(page, "#/campaigns/new", "campaign-builder")
    page.fill("#field-campaign-id", TAKEN)
    page.fill("#field-name", "Not a new version of the other one")
    page.click("#builder-save")
    page.wait_for_selector("#field-campaign-id[aria-invalid='true']")
    # Then the id is flagged and focused, and the other campaign has no new version
    assert TAKEN in page.inner_text("#field-campaign-id-error")
    assert page.evaluate("document.activeElement.id") == "field-campaign-id"
    assert site.api(f"/v1/campaigns/{TAKEN}", brand_id=site.brand)["state"]["latest_version"] == before
    assert page.url.endswith("#/campaigns/new")


def test_an_analyst_checks_and_dry_runs_but_cannot_save_or_start(page: Any, site: Site) -> None:
    # Given a saved draft of the brand (defined through the API, so this test stands alone)
    status, answer = _post(site, "/v1/campaigns", _draft(ANALYSTS_CAMPAIGN, "Read-only builder check"))
    assert status in (200, 201), answer
    # When the analyst (no campaigns:write) opens the campaigns list and the draft's editor
    sign_in(page, site, ANALYST)
    choose_brand(page, site.brand)
    visit(page, "#/campaigns", "campaigns")
    assert page.locator("#new-campaign").count() == 0
    visit(page, f"#/campaigns/{ANALYSTS_CAMPAIGN}", "campaign")
    assert page.locator("#edit-campaign").count() == 0
    visit(page, f"#/campaigns/{ANALYSTS_CAMPAIGN}/edit", "campaign-builder")
    # Then there is no Start (nor Save) button, and the page says why
    assert page.locator("#builder-start").count() == 0
    assert page.locator("#builder-save").count() == 0
    assert page.is_visible("#builder-read-only")
    # And the draft's saved audience is shown, with the audiences the analyst may pick from (an unscoped user: all)
    assert page.input_value("#field-audience-audience-id") == AUDIENCE
    offered = page.eval_on_selector_all("#builder-audiences option", "options => options.map(o => o.value)")
    assert sorted(offered) == sorted(a["id"] for a in site.api("/v1/audiences")["audiences"])
    assert AUDIENCE in offered
    # But the dry run works and agrees with the API
    page.click("#builder-dry-run-button")
    page.wait_for_selector("#builder-dry-run [data-metric='dry_run.selected']")
    status, dry = _post(site, f"/v1/campaigns/{ANALYSTS_CAMPAIGN}/dry-run", {}, brand_id=site.brand)
    assert status == 200
    assert number(page.inner_text("[data-metric='dry_run.selected']")) == dry["selected"]
