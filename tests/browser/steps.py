"""What a person does in the console, as test steps shared by the browser tests: sign in, go to a page and wait
for it to be drawn, read the figures it shows ([data-metric] elements)."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Site

Who = tuple[str, str, str]
METRICS = """() => {
  const out = {};
  for (const el of document.querySelectorAll('[data-metric]')) {
    if (!(el.dataset.metric in out)) out[el.dataset.metric] = el.textContent;
  }
  return out;
}"""  # every [data-metric] on the page, the first of each name


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def sign_in(page: Any, site: Site, who: Who) -> None:
    page.goto(site.url + "/")
    page.wait_for_selector("#username")
    page.fill("#username", who[0])
    page.fill("#password", who[1])
    page.press("#password", "Enter")
    page.wait_for_selector("main[data-ready]:not([data-ready='sign-in'])")


def visit(page: Any, where: str, ready: str) -> float:
    """Go to a hash route and wait for the page's ready marker; the milliseconds the page says it took."""
    page.evaluate(
        "h => { const m = document.querySelector('main'); if (m) delete m.dataset.ready; location.hash = h; }", where
    )
    page.wait_for_selector(f"main[data-ready='{ready}']")
    return float(page.evaluate("n => performance.getEntriesByName('page:' + n).at(-1).duration", ready))


def choose_brand(page: Any, brand: str) -> None:
    page.fill("#brand-input", brand)
    page.evaluate("document.querySelector('main').removeAttribute('data-ready')")
    page.press("#brand-input", "Enter")
    page.wait_for_selector("main[data-ready]")


def active(page: Any) -> dict[str, str]:
    return dict(
        page.evaluate(
            "() => { const a = document.activeElement; return {id: a.id, tag: a.tagName, text: a.textContent.trim(), "
            "type: a.getAttribute('type') || '', outline: getComputedStyle(a).outlineStyle}; }"
        )
    )
