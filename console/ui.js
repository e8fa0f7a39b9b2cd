// Pieces every page uses: page headers, cards with their loading and error states, tables, key-value lists.

import { h, replace } from "./dom.js";
import { t } from "./i18n.js";

export function pageHeader(title, lead, ...actions) {
  return h(
    "div",
    { class: "page-header" },
    h("div", {}, h("h1", { tabindex: "-1" }, title), lead ? h("p", { class: "lead" }, lead) : null),
    actions.length ? h("div", { class: "page-actions" }, actions) : null,
  );
}

/** A card: {el, body}. `link` is [href, text] for the card's way to its page. */
export function card(title, { link, wide = false, id } = {}) {
  const body = h("div", { class: "card-body" }, loading());
  const el = h(
    "section",
    { class: ["card", wide && "card-wide"], "aria-label": title, id: id || null },
    h(
      "header",
      { class: "card-header" },
      h("h2", {}, title),
      link ? h("a", { class: "card-link", href: link[0] }, link[1], h("span", { "aria-hidden": "true" }, " →")) : null,
    ),
    body,
  );
  return { el, body };
}

export function loading() {
  return h("p", { class: "loading", role: "status" }, t("common.loading"));
}

/** What a card shows when its API call failed: a role without the scope is not an error of the page. */
export function errorState(error, retry) {
  if (error && error.status === 403) {
    return h(
      "div",
      { class: "state state-forbidden", dataset: { state: "forbidden" } },
      h("p", { class: "state-title" }, t("common.not_for_role")),
      h("p", { class: "state-detail" }, error.message),
    );
  }
  if (error && error.status === 404) {
    return h(
      "div",
      { class: "state state-empty", dataset: { state: "not-found" } },
      h("p", { class: "state-title" }, t("common.not_found")),
      h("p", { class: "state-detail" }, error.message),
    );
  }
  return h(
    "div",
    { class: "state state-error", role: "alert", dataset: { state: "error" } },
    h("p", { class: "state-title" }, t("common.failed")),
    h("p", { class: "state-detail" }, (error && error.message) || String(error)),
    retry ? h("button", { type: "button", class: "button secondary", on: { click: retry } }, t("common.retry")) : null,
  );
}

export function empty(text) {
  return h("p", { class: "state state-empty", dataset: { state: "empty" } }, text);
}

/** Fill `body` from `load()` (which returns nodes); errors become the card's state, never the page's. */
export async function fill(body, load) {
  const run = async () => {
    replace(body, loading());
    try {
      replace(body, await load());
    } catch (error) {
      if (error && error.name === "AbortError") return;
      replace(body, errorState(error, run));
    }
  };
  await run();
}

/** A table: columns are [header, cell(row), {numeric}] triples; cells may be text or nodes. */
export function table(columns, rows, { caption, rowClass } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map(([header, , options]) =>
            h("th", { scope: "col", class: options && options.numeric ? "num" : null }, header),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { class: rowClass ? rowClass(row) : null },
            columns.map(([, cell, options]) => h("td", { class: options && options.numeric ? "num" : null }, cell(row))),
          ),
        ),
      ),
    ),
  );
}

/** A definition list of [term, value] pairs (values may be nodes); pairs with a null value are left out. */
export function facts(pairs, { columns = false } = {}) {
  return h(
    "dl",
    { class: ["facts", columns && "facts-columns"] },
    pairs
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([term, value]) => h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, value))),
  );
}

/** A big number with its label (KPI tiles). */
export function stat(labelText, value, { metric, note, small = false } = {}) {
  return h(
    "div",
    { class: "stat" },
    h("span", { class: "stat-label" }, labelText),
    h("span", { class: ["stat-value", small && "stat-value-small"], dataset: metric ? { metric } : {} }, value),
    note ? h("span", { class: "stat-note" }, note) : null,
  );
}

export function badge(text, tone) {
  return h("span", { class: ["badge", tone && `badge-${tone}`] }, text);
}

export function code(text) {
  return h("code", {}, text);
}

/** Ask before changing anything: a modal <dialog> (focus stays in it, Cancel has it first, Escape cancels, focus
 * goes back where it was); resolves true to go ahead. `area` names its ids and classes (`<area>-confirm`,
 * `<area>-dialog`), `tone` the go button's class. */
export function confirmStep(host, { area, title, lines, action, tone = "primary" }) {
  return new Promise((resolve) => {
    const returnTo = document.activeElement;
    const cancel = h("button", { type: "button", class: "button secondary" }, t("common.cancel"));
    const go = h("button", { type: "button", class: `button ${tone}`, dataset: { confirm: "go" } }, action);
    const dialog = h(
      "dialog",
      {
        class: `${area}-dialog`,
        id: `${area}-confirm`,
        "aria-labelledby": `${area}-confirm-title`,
        "aria-describedby": `${area}-confirm-text`,
      },
      h("h2", { id: `${area}-confirm-title` }, title),
      h("div", { id: `${area}-confirm-text` }, lines.map((line) => h("p", {}, line))),
      h("div", { class: `action-bar ${area}-dialog-actions` }, cancel, go),
    );
    cancel.addEventListener("click", () => dialog.close("cancel"));
    go.addEventListener("click", () => dialog.close("go"));
    dialog.addEventListener("close", () => {
      const answer = dialog.returnValue === "go";
      dialog.remove();
      if (returnTo && returnTo.isConnected) returnTo.focus();
      resolve(answer);
    });
    host.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
