"""Merge and unmerge on a customer's page, each previewed by a dry run first, in a real browser: an operator
(identity:merge) merges two demo persons and undoes it, checked against the API's own answers; a marketer sees none
of it; the API's refusals show next to the field they name.

The first test changes the shared demo and puts it back: the two persons it merges are separate again at its end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.browser.conftest import MARKETER, OPERATOR, Site
from tests.browser.steps import METRICS, number, sign_in, visit

REASON = "same customer at two counters"


def _post(site: Site, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST a JSON body as the local administrator: the API's status and answer."""
    headers = {"x-api-key": site.runtime.admin_key, "content-type": "application/json"}
    answer = site.runtime.http("POST", path, json.dumps(body).encode(), headers)
    return answer.status, json.loads(answer.body)


def _two_persons(site: Site) -> tuple[str, str]:
    """Two named, separate demo persons with a phone, none the other tests use (taken from the end of the list)."""
    used = {site.person_id}
    used |= {m["person_id"] for m in site.api("/v1/audiences/winter_cake_sms/preview", limit="20")["members"]}
    members = site.api("/v1/audiences/active_buyers/preview", limit="20")["members"]
    chosen: list[str] = []
    for member in reversed(members):
        profile = site.api(f"/v1/profiles/{member['person_id']}")
        phones = [i for i in profile["identifiers"] if i["type"] == "phone"]
        if member["person_id"] in used or profile["merged_away"] or profile["merged_from"] or not phones:
            continue
        if profile["traits"].get("name"):
            chosen.append(profile["person_id"])
        if len(chosen) == 2:
            return chosen[0], chosen[1]
    raise AssertionError("no two unmerged demo persons with a name and a phone")


def _column(page: Any, table: str, role: str) -> dict[str, Any]:
    """What a comparison column shows: its person, identifier keys and a few figures."""
    cells = f"#{table} td[data-role='{role}']"
    return dict(
        page.evaluate(
            """([table, role, cells]) => {
              const cell = (row) => document.querySelector(`${cells}[data-row='${row}']`).textContent.trim();
              return {
                person: document.querySelector(`#${table} th[data-role='${role}']`).dataset.person,
                identifiers: [...document.querySelectorAll(`${cells}[data-row='identifiers'] li`)]
                  .map((li) => li.dataset.key).sort(),
                brand_points: cell('brand_points'),
                orders: cell('orders'),
                merged_from: cell('merged_from'),
              };
            }""",
            [table, role, cells],
        )
    )


def _expected(person: dict[str, Any]) -> dict[str, Any]:
    return {
        "person": person["person_id"],
        "identifiers": sorted(i["key"] for i in person["identifiers"]),
        "brand_points": f"{person['loyalty']['brand_points']:,}",
        "orders": f"{person['activity']['order_count']:,}",
        "merged_from": ", ".join(person["merged_from"]) or "—",
    }


def test_an_operator_previews_a_merge_merges_then_undoes_it(
    page: Any, site: Site, browser: Any, screenshots: Path
) -> None:
    first, second = _two_persons(site)
    before = {pid: site.api(f"/v1/profiles/{pid}") for pid in (first, second)}
    second_phone = next(i["value"] for i in before[second]["identifiers"] if i["type"] == "phone")
    # Given the operator on the first person's page
    sign_in(page, site, OPERATOR)
    visit(page, f"#/customers/{first}", "customer")
    assert page.inner_text("main h1") == before[first]["traits"]["name"]
    assert page.is_disabled("[data-action='merge']")

    # When they look the second person up by phone (typed without the country code) and preview the merge
    page.select_option("#merge-by", "phone")
    page.fill("#merge-other", second_phone.removeprefix("+86"))
    page.fill("#merge-reason", REASON)
    page.click("[data-action='preview-merge']")
    page.wait_for_selector("#merge-preview")
    # Then the preview names the second person, and the merge may go ahead
    assert _column(page, "merge-preview", "other")["person"] == second
    assert page.is_enabled("[data-action='merge']")
    # And changing an input takes that back until it is previewed again
    page.select_option("#merge-by", "person_id")
    page.fill("#merge-other", second)
    assert page.is_disabled("[data-action='merge']")
    assert "preview again" in page.inner_text("#merge-status")
    page.click("[data-action='preview-merge']")
    page.wait_for_selector("#merge-preview")
    page.wait_for_selector("[data-action='merge']:enabled")

    # Then the preview is what the API's own dry run answers, beside the two persons as they are now
    status, dry = _post(site, "/v1/identity/merge", {"person_ids": [first, second], "reason": REASON, "dry_run": True})
    assert status == 200 and dry["committed"] is False, dry
    [merged] = dry["persons"]
    assert _column(page, "merge-preview", "result") == _expected(merged)
    assert _column(page, "merge-preview", "this") == _expected(before[first])
    assert _column(page, "merge-preview", "other") == _expected(before[second])
    survivor = merged["person_id"]
    [gone] = dry["merged_ids"]
    assert {survivor, gone} == {first, second}
    assert gone in page.inner_text("#merge-summary") and survivor in page.inner_text("#merge-summary")
    page.locator("#section-merge").screenshot(path=str(screenshots / "merge-preview.png"))
    # And nothing has changed
    for pid in (first, second):
        now = site.api(f"/v1/profiles/{pid}")
        assert not now["merged_away"] and now["merged_from"] == before[pid]["merged_from"]

    # When they merge, cancelling the confirmation first (Escape), then confirming
    page.click("[data-action='merge']")
    page.wait_for_selector("#identity-confirm[open]")
    assert page.evaluate("document.activeElement.closest('dialog') !== null")
    page.keyboard.press("Escape")
    page.wait_for_selector("#identity-confirm", state="detached")
    assert page.evaluate("document.activeElement.dataset.action") == "merge"
    assert not site.api(f"/v1/profiles/{gone}")["merged_away"]
    page.click("[data-action='merge']")
    page.wait_for_selector("#identity-confirm[open]")
    assert gone in page.inner_text("#identity-confirm") and REASON in page.inner_text("#identity-confirm")
    with page.expect_response(lambda r: r.url.endswith("/identity/merge") and r.request.method == "POST") as done:
        page.click("#identity-confirm [data-confirm='go']")
    assert done.value.status == 200 and done.value.json()["committed"] is True
    # Then the survivor's page is drawn again, saying so, with the merge in its history and a way to undo it
    page.wait_for_selector("main[data-ready='customer'] #identity-notice")
    assert page.url.endswith(f"#/customers/{survivor}")
    assert gone in page.inner_text("#identity-notice")
    after = site.api(f"/v1/profiles/{survivor}")
    assert gone in after["merged_from"]
    assert site.api(f"/v1/profiles/{gone}")["merged_away"]
    assert number(page.evaluate(METRICS)["profile.orders"]) == after["activity"]["order_count"]
    history = page.inner_text("#section-merges")
    assert gone in history and REASON in history
    assert page.locator(f"#section-merges [data-undo='{gone}']").count() == 1
    identifiers = page.inner_text("#section-identifiers")
    assert all(i["value"] in identifiers for i in merged["identifiers"])

    # And a marketer (no identity:merge) sees the merge in the history but nothing to merge or undo with
    other = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    try:
        tab = other.new_page()
        sign_in(tab, site, MARKETER)
        visit(tab, f"#/customers/{survivor}", "customer")
        assert gone in tab.inner_text("#section-merges")
        assert tab.locator("#section-merge, #unmerge-panel, [data-undo], [data-action]").count() == 0
    finally:
        other.close()

    # When they undo the merge from its history entry and preview the split
    page.click(f"[data-undo='{gone}']")
    page.wait_for_selector("#unmerge-panel:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "unmerge-reason"
    assert page.input_value("#unmerge-person") == gone
    assert page.is_disabled("[data-action='unmerge']")
    page.fill("#unmerge-reason", "two different customers after all")
    page.click("[data-action='preview-unmerge']")
    page.wait_for_selector("#unmerge-preview")
    # Then the persons the split would leave are shown, as the API's dry run answers them, and nothing changed
    status, split = _post(
        site,
        f"/v1/profiles/{survivor}/unmerge",
        {"merged_person_id": gone, "reason": "two different customers after all", "dry_run": True},
    )
    assert status == 200 and split["committed"] is False, split
    parts = page.eval_on_selector_all(
        "#unmerge-preview th[data-role='part']", "ths => ths.map((th) => th.dataset.person)"
    )
    assert sorted(parts) == sorted(p["person_id"] for p in split["persons"]) == sorted([first, second])
    shown = page.eval_on_selector_all(
        "#unmerge-preview td[data-role='part'][data-row='identifiers']",
        "tds => tds.map((td) => [...td.querySelectorAll('li')].map((li) => li.dataset.key).sort())",
    )
    assert shown == [sorted(i["key"] for i in p["identifiers"]) for p in split["persons"]]
    assert site.api(f"/v1/profiles/{gone}")["merged_away"]
    page.locator("#section-merges").screenshot(path=str(screenshots / "unmerge-preview.png"))

    # When they unmerge, confirming
    page.click("[data-action='unmerge']")
    page.wait_for_selector("#identity-confirm[open]")
    with page.expect_response(lambda r: r.url.endswith("/unmerge") and r.request.method == "POST") as done:
        page.click("#identity-confirm [data-confirm='go']")
    assert done.value.status == 200 and done.value.json()["committed"] is True
    # (the page drawn after the merge says "merged" in its notice: wait for the one the unmerge leaves)
    page.wait_for_selector("main[data-ready='customer'] #identity-notice:has-text('split off')")
    # Then both persons are separate again, and the page offers no undo any more
    for pid in (first, second):
        now = site.api(f"/v1/profiles/{pid}")
        assert now["person_id"] == pid and not now["merged_away"], now["person_id"]
        assert now["merged_from"] == before[pid]["merged_from"]
        assert sorted(i["key"] for i in now["identifiers"]) == sorted(i["key"] for i in before[pid]["identifiers"])
    assert page.url.endswith(f"#/customers/{survivor}")
    assert page.locator("[data-undo]").count() == 0
    assert "split" in page.inner_text("#section-merges").lower()

    # And previewing the same merge again shows what the API would do now; the page offers the merge only when the
    # API would merge someone (an unmerge's cut may keep the two apart)
    page.fill("#merge-other", gone)
    page.fill("#merge-reason", REASON)
    page.click("[data-action='preview-merge']")
    page.wait_for_selector("#merge-preview")
    status, again = _post(
        site, "/v1/identity/merge", {"person_ids": [survivor, gone], "reason": REASON, "dry_run": True}
    )
    assert status == 200, again
    results = page.eval_on_selector_all(
        "#merge-preview th[data-role='result']", "ths => ths.map((th) => th.dataset.person)"
    )
    assert results == [p["person_id"] for p in again["persons"]]
    if again["merged_ids"]:
        page.wait_for_selector("[data-action='merge']:enabled")
    else:
        assert "merge no one" in page.inner_text("#merge-summary")
        assert page.is_disabled("[data-action='merge']")


def test_a_marketer_sees_no_merge_form(page: Any, site: Site) -> None:
    # Given the marketer (no identity:merge) on a customer's page
    sign_in(page, site, MARKETER)
    visit(page, f"#/customers/{site.person_id}", "customer")
    # Then the page has its sections but no merge form, no undo and no preview
    assert page.locator("#section-merges").count() == 1
    assert page.locator("#section-merge, #unmerge-panel, [data-undo], #merge-reason").count() == 0


def test_the_api_refusals_of_a_merge_show_next_to_the_field(page: Any, site: Site, screenshots: Path) -> None:
    first, second = _two_persons(site)
    # Given the operator on a person's page
    sign_in(page, site, OPERATOR)
    visit(page, f"#/customers/{first}", "customer")
    # When they preview without a reason, the page asks for one before calling the API
    page.fill("#merge-other", "no-such-person")
    page.click("[data-action='preview-merge']")
    page.wait_for_selector("#merge-reason-error:not(:empty)")
    assert page.get_attribute("#merge-reason", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "merge-reason"

    # When they preview a merge with an unknown person id
    page.fill("#merge-reason", REASON)
    page.click("[data-action='preview-merge']")
    page.wait_for_selector("#merge-other-error:not(:empty)")
    # Then the API's message shows next to the other person's field, and nothing may be merged
    status, refused = _post(
        site, "/v1/identity/merge", {"person_ids": [first, "no-such-person"], "reason": REASON, "dry_run": True}
    )
    assert status == 404
    assert page.inner_text("#merge-other-error") == refused["message"]
    assert page.get_attribute("#merge-other", "aria-invalid") == "true"
    assert page.get_attribute("#merge-reason", "aria-invalid") is None
    assert page.is_disabled("[data-action='merge']")
    assert page.locator("#merge-preview").count() == 0

    # When they try to merge the person with themself
    page.fill("#merge-other", first)
    page.click("[data-action='preview-merge']")
    page.wait_for_function("() => document.querySelector('#merge-other-error').textContent.includes('two different')")
    # Then that refusal (400, field person_ids) shows by the same field
    status, refused = _post(
        site, "/v1/identity/merge", {"person_ids": [first, first], "reason": REASON, "dry_run": True}
    )
    assert status == 400 and refused["field"] == "person_ids"
    assert page.inner_text("#merge-other-error") == refused["message"]
    assert page.is_disabled("[data-action='merge']")

    # And in Chinese the form says the same in Chinese
    page.evaluate("document.querySelector('main').removeAttribute('data-ready')")
    page.click(".lang-switch .lang[lang='zh-CN']")
    page.wait_for_selector("main[data-ready='customer']")
    assert page.inner_text("#section-merge h2") == "与其他客户合并"
    assert page.inner_text("label[for='merge-reason']") == "原因"
    page.fill("#merge-other", second)
    page.fill("#merge-reason", REASON)
    page.click("[data-action='preview-merge']")
    page.wait_for_selector("#merge-preview")
    assert page.inner_text("#merge-preview th[data-role='result']") == "合并后\uff08预览\uff09"
    page.locator("#section-merge").screenshot(path=str(screenshots / "merge-preview-zh.png"))
