// The tag catalog: every tag a condition may test, grouped by category, with its kind, type, freshness and the values
// its rule can give; beside each tag, how the chosen brand's customers spread over its values (the analytics report
// `tags`, read from the nightly warehouse export). A search box narrows the catalog by name and description.

import { get, report } from "./api.js";
import { bars } from "./charts.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { intlLocale, label, t } from "./i18n.js";
import { CATEGORIES, tagValueLabel } from "./page-audiences.js";
import { needBrand } from "./page-home.js";
import { badge, card, code, errorState, loading, pageHeader } from "./ui.js";

const MAX_VALUES = 20; // the report lists this many values of a tag, then one `other` row for the rest

/** A day of the report's period ("2026-12-07", UTC) in the console's language, whatever the browser's zone. */
function day(text) {
  const value = new Date(`${text}T00:00:00Z`);
  if (Number.isNaN(value.getTime())) return String(text);
  return new Intl.DateTimeFormat(intlLocale(), { dateStyle: "medium", timeZone: "UTC" }).format(value);
}

function valueName(tag, value, i) {
  if (value === "other" && i >= MAX_VALUES) return t("tags.other_values");
  return tagValueLabel(tag, value);
}

function possibleValues(entry) {
  if (!entry.values.length) return h("span", { class: "muted small" }, t("tags.open_values"));
  return h(
    "ul",
    { class: "chips tag-values" },
    entry.values.map((v) => h("li", {}, badge(tagValueLabel(entry.name, v)))),
  );
}

function distribution(tag, rows) {
  if (!rows.length) return h("p", { class: "muted small", dataset: { state: "empty" } }, t("tags.no_distribution"));
  return bars(
    rows.map((row, i) => ({
      label: valueName(tag, row.value, i),
      value: row.share,
      text: f.pct(row.share),
      metric: `dist.${tag}.${row.value === null ? "null" : row.value}`,
    })),
    { max: 1, caption: t("tags.distribution_of", { tag }) },
  );
}

export async function render(ctx) {
  ctx.title(t("nav.tags"));
  ctx.main.append(pageHeader(t("tags.title"), t("tags.lead")));
  const search = h("input", {
    type: "search",
    id: "tag-search",
    name: "q",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: t("tags.search_placeholder"),
    "aria-describedby": "tag-count",
  });
  const count = h("p", { class: "muted small", id: "tag-count", role: "status", "aria-live": "polite" });
  ctx.main.append(
    h(
      "form",
      { class: "inline-form tag-search", role: "search", on: { submit: (event) => event.preventDefault() } },
      h("label", { for: "tag-search" }, t("tags.search")),
      search,
      count,
    ),
  );
  const status = card(t("tags.distributions"), { wide: true, id: "tag-distributions" });
  const holder = h("div", { class: "cards tag-categories" }, loading());
  ctx.main.append(h("div", { class: "cards" }, status.el), holder);

  let catalog;
  try {
    catalog = await get("/v1/tags", { signal: ctx.signal });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    replace(holder, h("div", { class: "card card-wide" }, h("div", { class: "card-body" }, errorState(error))));
    replace(status.body, t("tags.no_catalog"));
    return;
  }

  // ---- the catalog, a card per category; each tag's distribution cell is filled once the report answers
  const cells = new Map(); // tag -> its distribution cell
  const rows = []; // [tr, entry]
  const sections = []; // [card element, its rows]
  const categories = [...CATEGORIES, ...new Set(catalog.tags.map((x) => x.category).filter((c) => !CATEGORIES.includes(c)))];
  const cards = [];
  for (const category of categories) {
    const entries = catalog.tags.filter((x) => x.category === category);
    if (!entries.length) continue;
    const mine = entries.map((entry) => {
      const cell = h("td", { class: "tag-distribution" }, h("span", { class: "muted small" }, t("common.loading")));
      cells.set(entry.name, cell);
      const tr = h(
        "tr",
        { dataset: { tagRow: entry.name } },
        h("td", {}, h("strong", {}, code(entry.name)), h("div", { class: "muted small tag-description" }, entry.description)),
        h("td", {}, label("tags.kind_", entry.kind)),
        h("td", {}, label("tags.type_", entry.value_type)),
        h("td", {}, badge(label("tags.freshness_", entry.freshness), entry.freshness === "real_time" ? "good" : "warn"), entry.valid_days ? h("div", { class: "muted small" }, t("tags.valid_days", { n: entry.valid_days })) : null),
        h("td", {}, possibleValues(entry)),
        cell,
      );
      rows.push([tr, entry]);
      return tr;
    });
    const section = card(label("tags.category_", category), { wide: true, id: `tags-${category}` });
    replace(
      section.body,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "tag-table" },
          h("caption", { class: "visually-hidden" }, label("tags.category_", category)),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              [t("tags.tag"), t("tags.kind"), t("tags.type"), t("tags.freshness"), t("tags.values"), t("tags.distribution")].map((text) => h("th", { scope: "col" }, text)),
            ),
          ),
          h("tbody", {}, mine),
        ),
      ),
    );
    sections.push([section.el, mine]);
    cards.push(section.el);
  }
  replace(holder, cards);

  const filter = () => {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const [tr, entry] of rows) {
      const text = `${entry.name} ${entry.description}`.toLowerCase();
      tr.hidden = !words.every((w) => text.includes(w));
      if (!tr.hidden) shown += 1;
    }
    for (const [el, mine] of sections) el.hidden = mine.every((tr) => tr.hidden);
    count.textContent = t("tags.count", { shown: f.int(shown), total: f.int(rows.length) });
  };
  search.addEventListener("input", filter);
  filter();

  // ---- the distributions: one report for every tag of the brand
  const unavailable = () => {
    for (const cell of cells.values()) replace(cell, h("span", { class: "muted small" }, "—"));
  };
  const load = async () => {
    if (!ctx.brand) {
      replace(status.body, needBrand());
      unavailable();
      return;
    }
    replace(status.body, loading());
    for (const cell of cells.values()) replace(cell, h("span", { class: "muted small" }, t("common.loading")));
    let answer;
    try {
      answer = await report("/v1/analytics/tags", {
        query: { brand_id: ctx.brand },
        signal: ctx.signal,
        onWaiting: () => replace(status.body, h("p", { class: "loading", role: "status" }, t("tags.report_running"))),
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      replace(status.body, errorState(error, () => load().catch(() => {})));
      unavailable();
      return;
    }
    const byTag = new Map();
    for (const row of answer.rows) {
      if (!byTag.has(row.tag)) byTag.set(row.tag, []);
      byTag.get(row.tag).push(row);
    }
    const period = answer.period ? t("tags.period", { start: day(answer.period.start), end: day(answer.period.end) }) : null;
    replace(
      status.body,
      h("p", { class: "muted small", dataset: { state: "ready" } }, t("tags.distributions_of", { brand: ctx.brand }), period ? ` · ${period}` : null, answer.engine ? ` · ${answer.engine}` : null),
    );
    for (const [tag, cell] of cells) replace(cell, distribution(tag, byTag.get(tag) || []));
  };
  await load();
}
