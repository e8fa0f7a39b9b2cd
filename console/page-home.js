// Home: the programme at a glance. Each card reads one API and degrades on its own (a role without the scope
// sees "not available to your role" on that card only).

import { get, report } from "./api.js";
import { bars } from "./charts.js";
import { h } from "./dom.js";
import * as f from "./format.js";
import { label, t } from "./i18n.js";
import { badge, card, empty, facts, fill, pageHeader, stat } from "./ui.js";

export const STAGES = ["introduction", "growth", "mature", "dormant", "churned"];
const STATUS_ORDER = ["live", "scheduled", "paused", "draft", "completed", "stopped"];
const LATEST_RESULTS = 4;

export function needBrand() {
  return h("p", { class: "state state-empty", dataset: { state: "no-brand" } }, t("common.choose_brand"));
}

async function lifecycle(ctx) {
  if (!ctx.brand) return needBrand();
  const answer = await report("/v1/analytics/lifecycle", { query: { brand_id: ctx.brand }, signal: ctx.signal });
  const months = [...new Set(answer.rows.map((r) => r.month))].sort();
  if (!months.length) return empty(t("home.lifecycle_empty"));
  const last = months[months.length - 1];
  const before = months.length > 1 ? months[months.length - 2] : null;
  const count = (m, stage) => answer.rows.find((r) => r.month === m && r.stage === stage)?.persons || 0;
  const total = STAGES.reduce((sum, stage) => sum + count(last, stage), 0);
  const rows = STAGES.map((stage) => {
    const now = count(last, stage);
    const change = before ? now - count(before, stage) : null;
    return {
      label: label("stage.", stage),
      value: now,
      tone: stage,
      metric: `lifecycle.${stage}`,
      note: change === null ? null : t("home.vs_previous", { change: change > 0 ? `+${f.int(change)}` : f.int(change) }),
    };
  });
  return [
    h("div", { class: "stat-row" }, stat(t("home.customers_total"), f.int(total), { metric: "lifecycle.total" })),
    bars(rows, { format: f.int, caption: t("home.lifecycle") }),
    h("p", { class: "card-foot" }, t("home.lifecycle_period", { month: f.month(last), engine: answer.engine })),
  ];
}

function resultLine(campaign, results) {
  const name = h("a", { href: `#/campaigns/${encodeURIComponent(campaign.campaign_id)}` }, campaign.name);
  const line = (text) => h("li", { class: "result-line" }, name, h("span", { class: "muted" }, text));
  if (results.kind === "journey" && results.journey) {
    const j = results.journey;
    const entered = (j.entered.treatment || 0) + (j.entered.holdout || 0);
    return line(
      t("home.journey_line", {
        entered: f.int(entered),
        treated: f.pct(j.conversion_rate.treatment),
        holdout: f.pct(j.conversion_rate.holdout),
      }),
    );
  }
  const summary = results.run && results.run.summary;
  if (!summary) return line(t("home.no_results"));
  return line(
    t("home.run_line", {
      treated: f.pct(summary.treatment_rate),
      holdout: f.pct(summary.holdout_rate),
      revenue: summary.display?.incremental_revenue ?? f.money(summary.incremental_revenue_minor, summary.currency),
    }),
  );
}

async function campaignsCard(ctx) {
  if (!ctx.brand) return needBrand();
  const list = await get("/v1/campaigns", { query: { brand_id: ctx.brand }, signal: ctx.signal });
  const counts = {};
  for (const c of list.campaigns) counts[c.status] = (counts[c.status] || 0) + 1;
  const shown = STATUS_ORDER.filter((s) => ["live", "scheduled", "paused"].includes(s) || counts[s]);
  const tiles = h(
    "div",
    { class: "stat-row" },
    shown.map((s) => stat(label("status.", s), f.int(counts[s] || 0), { metric: `campaigns.${s}` })),
  );
  const recent = [...list.campaigns].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
  const results = await Promise.all(
    recent.slice(0, LATEST_RESULTS + 2).map((c) =>
      get(`/v1/campaigns/${encodeURIComponent(c.campaign_id)}/results`, {
        query: { brand_id: ctx.brand },
        signal: ctx.signal,
      }).then(
        (r) => [c, r],
        (error) => (error.status === 404 || error.status === 409 ? null : Promise.reject(error)),
      ),
    ),
  );
  const withResults = results.filter(Boolean).slice(0, LATEST_RESULTS);
  return [
    list.switch && list.switch.stopped
      ? h("p", { class: "notice notice-danger" }, t("campaigns.switch_on", { reason: list.switch.reason || "—" }))
      : null,
    tiles,
    h("h3", { class: "subhead" }, t("home.latest_results")),
    withResults.length
      ? h(
          "ul",
          { class: "result-lines" },
          withResults.map(([c, r]) => resultLine(c, r)),
        )
      : empty(t("home.no_results")),
  ];
}

async function modelsCard(ctx) {
  const answer = await get("/v1/models", { signal: ctx.signal });
  const promoted = answer.models.filter((m) => m.promoted && m.headline);
  return [
    h(
      "div",
      { class: "stat-row" },
      stat(t("home.models_promoted"), `${f.int(promoted.length)} / ${f.int(answer.models.length)}`, {
        metric: "models.promoted",
      }),
    ),
    promoted.length
      ? h(
          "ul",
          { class: "result-lines" },
          promoted.map((m) =>
            h(
              "li",
              { class: "result-line" },
              h("a", { href: `#/models/${encodeURIComponent(m.model_name)}` }, m.model_name),
              h(
                "span",
                { class: "muted" },
                `${m.headline.metric}: ${f.num(m.headline.value, 3)}`,
                m.headline.interval
                  ? ` (${f.num(m.headline.interval[0], 3)}–${f.num(m.headline.interval[1], 3)})`
                  : "",
                " ",
              ),
              m.headline.accepted ? badge(t("models.accepted"), "good") : badge(t("models.rejected"), "bad"),
            ),
          ),
        )
      : empty(t("models.none_promoted")),
  ];
}

export function poolRow(balance) {
  const pool = balance.pool;
  const used = balance.reserved_minor + balance.committed_minor;
  return {
    label: pool.description ? `${pool.pool_id} · ${pool.description}` : pool.pool_id,
    value: used,
    max: pool.total_minor,
    text: t("budgets.used_of", { used: f.money(used, pool.currency), total: f.money(pool.total_minor, pool.currency) }),
    metric: `budget.${pool.pool_id}.used`,
  };
}

async function budgetsCard(ctx) {
  if (!ctx.brand) return needBrand();
  const answer = await get("/v1/budgets", { query: { brand_id: ctx.brand }, signal: ctx.signal });
  if (!answer.pools.length) return empty(t("budgets.none"));
  return answer.pools.map((balance) => {
    const row = poolRow(balance);
    const pool = balance.pool;
    return h(
      "div",
      { class: "pool" },
      h("div", { class: "pool-head" }, h("strong", {}, pool.pool_id), pool.form ? badge(label("form.", pool.form)) : null),
      pool.description ? h("p", { class: "muted small" }, pool.description) : null,
      bars([{ ...row, label: t("budgets.used"), text: f.pct(pool.total_minor ? row.value / pool.total_minor : 0) }], {
        max: pool.total_minor,
      }),
      facts(
        [
          [t("budgets.used"), row.text],
          [t("budgets.available"), f.money(balance.available_minor, pool.currency)],
          [t("budgets.reserved"), f.money(balance.reserved_minor, pool.currency)],
          [t("budgets.committed"), f.money(balance.committed_minor, pool.currency)],
        ],
        { columns: true },
      ),
    );
  });
}

export async function render(ctx) {
  ctx.title(t("nav.home"));
  ctx.main.append(pageHeader(t("home.title"), ctx.brand ? t("home.lead", { brand: ctx.brand }) : t("home.lead_any")));
  const grid = h("div", { class: "cards" });
  ctx.main.append(grid);
  const cards = [
    [t("home.lifecycle"), ["#/customers", t("home.to_customers")], lifecycle],
    [t("home.campaigns"), ["#/campaigns", t("home.to_campaigns")], campaignsCard],
    [t("home.models"), ["#/models", t("home.to_models")], modelsCard],
    [t("home.budgets"), ["#/offers", t("home.to_offers")], budgetsCard],
  ];
  await Promise.all(
    cards.map(([title, link, load], i) => {
      const { el, body } = card(title, { link, id: `card-${["lifecycle", "campaigns", "models", "budgets"][i]}` });
      grid.append(el);
      return fill(body, () => load(ctx));
    }),
  );
}
