// Models: every model's promoted version and its headline (metric, value, 95% interval, baseline, accepted),
// a model's versions, and one version's report (its manifest as the registry keeps it).

import { get } from "./api.js";
import { intervals } from "./charts.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { label, t } from "./i18n.js";
import { badge, card, code, empty, errorState, facts, fill, loading, pageHeader, table } from "./ui.js";

function modelPath(name) {
  return `/v1/models/${encodeURIComponent(name)}`;
}

function value(v) {
  if (typeof v !== "number") return v === null || v === undefined ? "—" : String(v);
  return Number.isInteger(v) ? f.int(v) : f.num(v, 3);
}

function headlineBlock(headline) {
  if (!headline) return empty(t("models.no_headline"));
  const hasInterval = Array.isArray(headline.interval);
  const rows = [
    {
      label: t("models.this_version"),
      value: headline.value,
      low: hasInterval ? headline.interval[0] : null,
      high: hasInterval ? headline.interval[1] : null,
      tone: "a",
      text: hasInterval ? `${value(headline.value)} (${value(headline.interval[0])}–${value(headline.interval[1])})` : value(headline.value),
    },
  ];
  if (typeof headline.baseline_value === "number") {
    rows.push({ label: t("models.baseline"), value: headline.baseline_value, tone: "b", text: value(headline.baseline_value) });
  }
  return h(
    "div",
    { class: "headline" },
    h(
      "p",
      { class: "headline-metric" },
      h("span", { class: "muted" }, headline.metric),
      " ",
      h("strong", { dataset: { metric: `model.${headline.model_name}.value` } }, value(headline.value)),
      " ",
      headline.accepted ? badge(t("models.accepted"), "good") : badge(t("models.rejected"), "bad"),
    ),
    intervals(rows, { format: (v) => f.num(v, 2), caption: headline.metric }),
    facts([
      [t("models.baseline"), `${headline.baseline}${typeof headline.baseline_value === "number" ? ` · ${value(headline.baseline_value)}` : ""}`],
      [t("models.bar"), headline.bar],
      [t("models.held_out_rows"), f.int(headline.held_out_rows)],
      [t("models.notes"), headline.notes && headline.notes.length ? headline.notes.join("; ") : null],
    ]),
  );
}

export async function renderList(ctx) {
  ctx.title(t("nav.models"));
  ctx.main.append(pageHeader(t("models.title"), t("models.lead")));
  const holder = h("div", { class: "cards" }, loading());
  ctx.main.append(holder);
  let answer;
  try {
    answer = await get("/v1/models", { signal: ctx.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    replace(holder, h("section", { class: "card card-wide" }, h("div", { class: "card-body" }, errorState(error))));
    return;
  }
  if (!answer.models.length) {
    replace(holder, empty(t("models.none")));
    return;
  }
  replace(
    holder,
    answer.models.map((m) => {
      const { el, body } = card(m.model_name, { link: [`#/models/${encodeURIComponent(m.model_name)}`, t("models.versions")], id: `model-${m.model_name}` });
      replace(
        body,
        h(
          "p",
          { class: "profile-meta" },
          badge(label("modelkind.", m.kind), "info"),
          m.promoted
            ? h(
                "span",
                { class: "muted" },
                t("models.promoted_at", { at: f.dateTime(m.promoted.promoted_at), by: m.promoted.promoted_by || t("models.by_training") }),
              )
            : h("span", { class: "muted" }, t("models.not_promoted")),
        ),
        m.promoted
          ? [
              h(
                "p",
                {},
                h(
                  "a",
                  { href: `#/models/${encodeURIComponent(m.model_name)}/${encodeURIComponent(m.promoted.version)}` },
                  t("models.report_of", { version: m.promoted.version }),
                ),
              ),
              headlineBlock(m.headline),
            ]
          : h(
              "p",
              {},
              t("models.newest", { version: m.newest_version || "—" }),
              " ",
              m.newest_version
                ? h("a", { href: `#/models/${encodeURIComponent(m.model_name)}/${encodeURIComponent(m.newest_version)}` }, t("models.open_report"))
                : null,
            ),
        m.problem ? h("p", { class: "notice notice-danger" }, m.problem) : null,
      );
      return el;
    }),
  );
}

function scalarFacts(object, skip = []) {
  return facts(
    Object.entries(object || {})
      .filter(([k, v]) => !skip.includes(k) && (v === null || ["number", "string", "boolean"].includes(typeof v)))
      .map(([k, v]) => [code(k), typeof v === "boolean" ? (v ? t("common.yes") : t("common.no")) : value(v)]),
    { columns: true },
  );
}

function objectTables(object, path = "") {
  // arrays of rows (deciles, calibration, lift at reach ...) become tables, nested objects their own facts
  const out = [];
  for (const [k, v] of Object.entries(object || {})) {
    const name = path ? `${path}.${k}` : k;
    if (Array.isArray(v) && v.length && v.every((row) => row && typeof row === "object" && !Array.isArray(row))) {
      const columns = [...new Set(v.flatMap((row) => Object.keys(row)))].filter((c) =>
        v.every((row) => row[c] === null || row[c] === undefined || typeof row[c] !== "object"),
      );
      const numeric = (c) => v.every((row) => row[c] === null || row[c] === undefined || typeof row[c] === "number");
      out.push(h("h4", {}, code(name)), table(columns.map((c) => [c, (row) => value(row[c]), { numeric: numeric(c) }]), v, { caption: name }));
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      const scalars = Object.values(v).some((x) => x === null || typeof x !== "object");
      if (scalars) out.push(h("h4", {}, code(name)), scalarFacts(v));
      out.push(...objectTables(v, name));
    }
  }
  return out;
}

async function versionReport(ctx, name, version) {
  const report = await get(`${modelPath(name)}/versions/${encodeURIComponent(version)}`, { signal: ctx.signal });
  const m = report.manifest;
  return [
    h("p", { class: "lead" }, report.label),
    headlineBlock(report.headline),
    m.rejected_because && m.rejected_because.length
      ? h("div", { class: "notice notice-danger" }, h("strong", {}, t("models.rejected_because")), h("ul", {}, m.rejected_because.map((r) => h("li", {}, r))))
      : null,
    m.metrics && m.metrics.evaluation ? h("p", {}, h("strong", {}, `${t("models.evaluation")}: `), m.metrics.evaluation) : null,
    h("h3", { class: "subhead" }, t("models.metrics")),
    scalarFacts(m.metrics, ["evaluation", "baseline"]), // both shown in words above
    objectTables(m.metrics),
    h("h3", { class: "subhead" }, t("models.label")),
    scalarFacts(m.label),
    h("h3", { class: "subhead" }, t("models.artifact")),
    facts([
      [t("models.trained_at"), f.dateTime(m.trained_at)],
      [t("models.sha256"), code(m.sha256)],
      [t("models.size"), t("models.bytes", { n: f.int(m.size_bytes) })],
      [t("models.libraries"), [`scikit-learn ${m.sklearn_version}`, ...Object.entries(m.library_versions || {}).map(([k, v]) => `${k} ${v}`)].join(", ")],
      [t("models.outputs"), m.outputs && m.outputs.length ? m.outputs.join(", ") : null],
    ]),
    h("h3", { class: "subhead" }, t("models.features", { n: f.int((m.feature_names || []).length) })),
    h("ul", { class: "chips" }, (m.feature_names || []).map((feature) => h("li", {}, code(feature)))),
  ];
}

export async function renderModel(ctx) {
  const [name, version] = ctx.params;
  ctx.title(name);
  ctx.main.append(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/models" }, `← ${t("models.back")}`)),
    pageHeader(name, version ? t("models.version_lead", { version }) : t("models.versions_lead")),
  );
  const versions = card(t("models.versions"), { id: "model-versions" });
  const report = version ? card(t("models.report"), { wide: true, id: "model-report" }) : null;
  ctx.main.append(h("div", { class: "cards" }, report && report.el, versions.el));
  await Promise.all([
    fill(versions.body, async () => {
      const answer = await get(modelPath(name), { signal: ctx.signal });
      if (!answer.versions.length) return empty(t("models.no_versions"));
      return table(
        [
          [
            t("models.version"),
            (v) =>
              h(
                "a",
                { href: `#/models/${encodeURIComponent(name)}/${encodeURIComponent(v.version)}`, "aria-current": v.version === version ? "true" : null },
                v.version,
              ),
          ],
          [t("models.trained_at"), (v) => f.dateTime(v.trained_at)],
          [t("models.metric"), (v) => (v.headline ? `${v.headline.metric}: ${value(v.headline.value)}` : "—")],
          [t("models.state"), (v) => [v.promoted ? badge(t("models.promoted"), "info") : null, " ", v.headline ? (v.headline.accepted ? badge(t("models.accepted"), "good") : badge(t("models.rejected"), "bad")) : null]],
        ],
        answer.versions,
        { caption: t("models.versions") },
      );
    }),
    report ? fill(report.body, () => versionReport(ctx, name, version)) : null,
  ]);
}
