// Campaigns: the brand's list, and one campaign's definition, runs and results (a run's funnel, lift with 95%
// intervals, revenue per person, ROI and cost; a journey's entries, conversion and per-step funnel).
// Start / pause / resume show only to a user whose token holds campaigns:write (the API checks it again).

import { get, post } from "./api.js";
import { hasScope } from "./auth.js";
import { bars, intervals } from "./charts.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { label, t } from "./i18n.js";
import { needBrand } from "./page-home.js";
import { badge, card, code, empty, errorState, facts, fill, loading, pageHeader, stat, table } from "./ui.js";
import { liftVerdict, revenueVerdict } from "./verdicts.js";

const STATUS_TONE = { live: "good", scheduled: "info", paused: "warn", stopped: "bad", draft: null, completed: null };

export function statusBadge(status) {
  return badge(label("status.", status), STATUS_TONE[status]);
}

function campaignPath(id) {
  return `/v1/campaigns/${encodeURIComponent(id)}`;
}

// ---- the list ---------------------------------------------------------------------------------------------

export async function renderList(ctx) {
  ctx.title(t("nav.campaigns"));
  const create = hasScope(ctx.session, "campaigns:write")
    ? h("a", { class: "button primary", href: "#/campaigns/new", id: "new-campaign" }, t("builder.new_campaign"))
    : null;
  ctx.main.append(pageHeader(t("campaigns.title"), t("campaigns.lead"), ...(create ? [create] : [])));
  if (!ctx.brand) {
    ctx.main.append(needBrand());
    return;
  }
  const { el, body } = card(t("campaigns.all"), { wide: true, id: "campaign-list" });
  ctx.main.append(el);
  await fill(body, async () => {
    const list = await get("/v1/campaigns", { query: { brand_id: ctx.brand }, signal: ctx.signal });
    const rows = [...list.campaigns].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
    return [
      list.switch && list.switch.stopped
        ? h("p", { class: "notice notice-danger" }, t("campaigns.switch_on", { reason: list.switch.reason || "—" }))
        : null,
      rows.length
        ? table(
            [
              [
                t("campaigns.name"),
                (c) => [
                  h("a", { href: `#/campaigns/${encodeURIComponent(c.campaign_id)}` }, c.name),
                  h("div", { class: "muted small" }, code(c.campaign_id)),
                ],
              ],
              [t("campaigns.status"), (c) => statusBadge(c.status)],
              [
                t("campaigns.version"),
                (c) => (c.active_version ? t("campaigns.version_active", { active: c.active_version, latest: c.latest_version }) : t("campaigns.version_latest", { latest: c.latest_version })),
              ],
              [t("campaigns.next_run"), (c) => (c.next_run_at ? f.dateTime(c.next_run_at) : "—")],
              [t("campaigns.updated"), (c) => [f.dateTime(c.updated_at), h("div", { class: "muted small" }, c.updated_by)]],
            ],
            rows,
            { caption: t("campaigns.all") },
          )
        : empty(t("campaigns.none")),
    ];
  });
}

// ---- the definition -----------------------------------------------------------------------------------------

function waitText(wait) {
  if (!wait) return "";
  if (wait.until) return t("def.wait_until", { time: String(wait.until).slice(0, 5) });
  const parts = [];
  if (wait.days) parts.push(t("def.days", { n: wait.days }));
  if (wait.hours) parts.push(t("def.hours", { n: wait.hours }));
  if (wait.minutes) parts.push(t("def.minutes", { n: wait.minutes }));
  return parts.join(" ") || t("def.minutes", { n: 0 });
}

function stepText(step) {
  if (step.send) {
    const send = step.send;
    const channels = [send.channel, ...(send.or_channels || [])].map((c) => label("channel.", c)).join(` ${t("def.or")} `);
    const offer = send.offer && (send.offer.offer_id || send.offer.coupon_id);
    return [
      t("def.send", { channels }),
      offer ? ` · ${t("def.offer", { offer })}` : "",
      send.to && send.to !== "everyone" ? ` · ${label("def.to_", send.to)}` : "",
    ].join("");
  }
  if (step.wait) return t("def.wait", { time: waitText(step.wait) });
  if (step.wait_for) {
    const w = step.wait_for;
    return t("def.wait_for", {
      event: label("event.", w.event),
      time: waitText(w.timeout),
      then: w.then || t("def.next_step"),
    });
  }
  if (step.branch) {
    const b = step.branch;
    const cond = b.if_ || b.if || {};
    return t("def.branch", {
      condition: cond.did ? label("event.", cond.did) : t("def.condition"),
      then: b.then,
      otherwise: b.else_ || b.else || t("def.next_step"),
    });
  }
  if (step.split) return t("def.split", { arms: step.split.arms.map((a) => `${f.pct(a.share, 0)} → ${a.goto || t("def.next_step")}`).join(", ") });
  if (step.goto) return t("def.goto", { path: typeof step.goto === "string" ? step.goto : JSON.stringify(step.goto) });
  if (step.exit) return t("def.exit");
  return "—";
}

function stepsList(steps, prefix) {
  return h(
    "ol",
    { class: "steps" },
    steps.map((step, i) =>
      h("li", {}, h("code", { class: "step-ref" }, `${prefix}[${i}]`), h("span", {}, stepText(step))),
    ),
  );
}

function triggerText(trigger) {
  const set = Object.entries(trigger).filter(([, v]) => v !== null && v !== undefined);
  if (trigger.event) {
    const where = trigger.where ? ` (${Object.entries(trigger.where).map(([k, v]) => `${k} = ${v}`).join(", ")})` : "";
    return t("def.trigger_event", { event: label("event.", trigger.event) }) + where;
  }
  if (trigger.audience_entered) return t("def.trigger_audience", { audience: trigger.audience_entered });
  if (trigger.lifecycle) return t("def.trigger_lifecycle", { stage: label("stage.", trigger.lifecycle.to) });
  return set.map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
}

function scheduleText(schedule) {
  if (schedule.once) return t("def.once", { at: String(schedule.once).replace("T", " ").slice(0, 16) });
  if (schedule.every) {
    const days = schedule.every.weekdays ? schedule.every.weekdays.map((d) => label("weekday.", d)).join(", ") : t("def.every_day");
    return t("def.every", { days, at: String(schedule.every.at).slice(0, 5) });
  }
  return "—";
}

function audienceText(audience) {
  const parts = [];
  if (audience.audience_id) parts.push(t("def.audience_id", { audience: audience.audience_id }));
  const conditions = audience.all_of.length + audience.any_of.length + audience.none_of.length;
  if (conditions) parts.push(t("def.conditions", { n: conditions }));
  if (audience.require_consent_channel) parts.push(t("def.consent", { channel: label("channel.", audience.require_consent_channel) }));
  return parts.join(" · ") || t("def.everyone");
}

function definitionCard(view) {
  const d = view.version.definition;
  // a journey has no runs card beside it
  const { el, body } = card(t("campaigns.definition"), { id: "campaign-definition", wide: Boolean(d.trigger) });
  const kind = d.trigger ? t("def.kind_journey") : d.schedule ? t("def.kind_scheduled") : t("def.kind_manual");
  const budget = d.budget;
  const costs = budget
    ? Object.entries(budget.cost_per_message_minor || {})
        .map(([channel, cost]) => `${label("channel.", channel)} ${f.money(cost, budget.currency)}`)
        .join(", ")
    : null;
  replace(
    body,
    d.description ? h("p", {}, d.description) : null,
    facts([
      [t("def.kind"), kind],
      [t("def.when"), d.trigger ? triggerText(d.trigger) : d.schedule ? scheduleText(d.schedule) : t("def.on_start")],
      [t("def.audience"), audienceText(d.audience)],
      [t("def.budget"), budget ? f.money(budget.amount_minor, budget.currency) : "—"],
      [t("def.message_costs"), costs],
      [t("def.holdout"), f.pct(d.holdout, 0)],
      [t("def.window"), t("def.days", { n: d.conversion_window_days })],
      [t("def.max_recipients"), d.max_recipients ? f.int(d.max_recipients) : null],
      [t("def.exit_on"), d.exit_on && d.exit_on.length ? d.exit_on.map((e) => label("event.", e)).join(", ") : null],
      [t("def.targeting"), d.targeting ? label("ranking.", d.targeting.ranking) : null],
      [t("def.priority"), String(d.priority)],
      [t("def.planned_sends"), f.int(view.planned_sends)],
      [t("def.approval"), view.needs_approval ? (view.version.approval ? t("def.approved") : t("def.needs_approval")) : t("def.no_approval")],
      [t("def.version"), t("def.version_by", { version: view.version.version, by: view.version.created_by, at: f.dateTime(view.version.created_at) })],
      [t("def.next_runs"), view.next_runs && view.next_runs.length ? view.next_runs.map(f.dateTime).join(", ") : null],
    ]),
    h("h3", { class: "subhead" }, t("def.steps")),
    stepsList(d.steps, "steps"),
    Object.entries(d.paths || {}).map(([name, steps]) => [
      h("h3", { class: "subhead" }, t("def.path", { path: name })),
      stepsList(steps, `paths.${name}`),
    ]),
    d.variants && d.variants.length
      ? [
          h("h3", { class: "subhead" }, t("def.variants")),
          h("ul", {}, d.variants.map((v) => h("li", {}, `${v.name}: ${f.pct(v.share, 0)}`))),
        ]
      : null,
  );
  return el;
}

// ---- results: shared pieces --------------------------------------------------------------------------------

function liftBlock(lift, { treatedLabel, controlLabel, caption }) {
  if (!lift) return empty(t("results.no_lift"));
  const rate = (v) => f.pct(v, 1);
  const ci = (r) => (r.low !== null && r.high !== null ? ` (${f.pct(r.low, 1)}–${f.pct(r.high, 1)})` : "");
  return h(
    "div",
    { class: "lift" },
    intervals(
      [
        { label: treatedLabel, value: lift.treatment.rate, low: lift.treatment.low, high: lift.treatment.high, tone: "a", text: `${rate(lift.treatment.rate)}${ci(lift.treatment)}` },
        { label: controlLabel, value: lift.control.rate, low: lift.control.low, high: lift.control.high, tone: "b", text: `${rate(lift.control.rate)}${ci(lift.control)}` },
      ],
      { format: (v) => f.pct(v, 0), caption },
    ),
    lift.difference !== null
      ? intervals(
          [
            {
              label: t("results.difference"),
              value: lift.difference,
              low: lift.low,
              high: lift.high,
              tone: "c",
              text: `${f.points(lift.difference)} ${t("results.pts")} (${f.points(lift.low)} – ${f.points(lift.high)})`,
            },
          ],
          { format: (v) => f.points(v, 0), zero: true, caption: t("results.difference") },
        )
      : null,
    facts(
      [
        [t("results.converted_treated"), t("results.n_of_m", { n: f.int(lift.treatment.converted), m: f.int(lift.treatment.size) })],
        [t("results.converted_control"), t("results.n_of_m", { n: f.int(lift.control.converted), m: f.int(lift.control.size) })],
        [t("results.relative"), lift.relative === null ? "—" : f.pct(lift.relative, 0)],
        [t("results.p_value"), lift.p_value === null ? "—" : f.num(lift.p_value, 3)],
        [t("results.incremental_conversions"), lift.incremental_conversions === null ? "—" : f.num(lift.incremental_conversions, 1)],
      ],
      { columns: true },
    ),
    h("p", { class: ["verdict", lift.conclusive ? "verdict-conclusive" : "verdict-inconclusive"], dataset: { metric: "verdict" } }, liftVerdict(lift)),
  );
}

function variantsBlock(variants, treated) {
  const entries = Object.entries(variants || {});
  if (!entries.length) return null;
  return [
    h("h3", { class: "subhead" }, t("results.variants")),
    entries.map(([name, lift]) =>
      h(
        "div",
        { class: "variant", dataset: { variant: name } },
        h("h4", {}, t("results.variant", { name })),
        liftBlock(lift, { treatedLabel: treated(name), controlLabel: t("results.held_out"), caption: name }),
      ),
    ),
  ];
}

function messagesByChannel(byChannel) {
  const channels = Object.entries(byChannel || {});
  if (!channels.length) return empty(t("results.no_messages"));
  const statuses = [...new Set(channels.flatMap(([, s]) => Object.keys(s)))];
  return table(
    [
      [t("results.channel"), ([c]) => label("channel.", c)],
      ...statuses.map((status) => [label("msg.", status), ([, s]) => f.int(s[status] || 0), { numeric: true }]),
    ],
    channels,
    { caption: t("results.messages") },
  );
}

// ---- a scheduled campaign's run ---------------------------------------------------------------------------

function funnelBars(summary, receipts) {
  const fn = summary.funnel;
  if (!fn) return empty(t("results.no_funnel"));
  const rows = [
    { label: t("funnel.eligible"), value: fn.eligible, metric: "funnel.eligible" },
    fn.excluded_contact_policy
      ? { label: t("funnel.excluded"), value: fn.excluded_contact_policy, metric: "funnel.excluded_contact_policy", tone: "muted", indent: true }
      : null,
    { label: t("funnel.selected"), value: fn.selected, metric: "funnel.selected" },
    { label: t("funnel.treated"), value: fn.treatment, metric: "funnel.treatment", indent: true },
    { label: t("funnel.held_out"), value: fn.holdout, metric: "funnel.holdout", tone: "b", indent: true },
  ].filter(Boolean);
  for (const [step, tally] of Object.entries(fn.steps)) {
    const kept = Object.values(tally.suppressed || {}).reduce((a, b) => a + b, 0);
    const notes = [
      kept ? t("funnel.kept_back", { n: f.int(kept) }) : null,
      tally.deferred ? t("funnel.deferred", { n: f.int(tally.deferred) }) : null,
      tally.failed ? t("funnel.failed", { n: f.int(tally.failed) }) : null,
    ].filter(Boolean);
    rows.push({
      label: t("funnel.sent_step", { step: label("step.", step) }),
      value: tally.sent,
      metric: `funnel.steps.${step}.sent`,
      note: notes.join(" · ") || null,
    });
  }
  if (receipts && receipts.delivered !== undefined) {
    rows.push({ label: t("funnel.delivered"), value: receipts.delivered, metric: "funnel.delivered", tone: "muted" });
  }
  rows.push(
    { label: t("funnel.redeemed"), value: fn.offers_redeemed, metric: "funnel.offers_redeemed" },
    { label: t("funnel.purchased"), value: fn.purchased, metric: "funnel.purchased" },
    { label: t("funnel.orders"), value: fn.credited_orders, metric: "funnel.credited_orders", note: f.money(fn.credited_revenue_minor, summary.currency) },
    { label: t("funnel.converted_any"), value: fn.converted_any, metric: "funnel.converted_any" },
  );
  return bars(rows, { max: fn.eligible, format: f.int, caption: t("results.funnel") });
}

function revenueBlock(summary) {
  const r = summary.revenue_lift;
  const d = summary.display || {};
  const money = (v) => f.money(v, summary.currency);
  return h(
    "div",
    { class: "lift" },
    facts(
      [
        [t("results.revenue_treated"), d.revenue_per_treated_person ?? money(summary.revenue_per_person_treatment_minor)],
        [t("results.revenue_holdout"), d.revenue_per_holdout_person ?? money(summary.revenue_per_person_holdout_minor)],
        [t("results.incremental_revenue"), d.incremental_revenue ?? money(summary.incremental_revenue_minor)],
      ],
      { columns: true },
    ),
    r && r.difference !== null
      ? intervals(
          [
            {
              label: t("results.difference_per_person"),
              value: r.difference,
              low: r.low,
              high: r.high,
              tone: "c",
              text: `${f.signedMoney(r.difference, summary.currency)} (${money(r.low)} – ${money(r.high)})`,
            },
          ],
          { format: (v) => f.moneyTick(v, summary.currency), zero: true, caption: t("results.difference_per_person") },
        )
      : null,
    r ? h("p", { class: ["verdict", r.conclusive ? "verdict-conclusive" : "verdict-inconclusive"] }, revenueVerdict(r, summary.currency)) : null,
  );
}

function roiBlock(summary) {
  const d = summary.display || {};
  const money = (v) => f.money(v, summary.currency);
  const offers = summary.offers || [];
  const evidence = Object.entries(summary.attribution?.by_evidence || {});
  return h(
    "div",
    { class: "roi" },
    h(
      "div",
      { class: "roi-figure" },
      stat(t("results.roi"), summary.roi === null ? "—" : f.num(summary.roi, 2), { metric: "roi" }),
      h("p", { class: "roi-definition", dataset: { metric: "roi_definition" } }, summary.roi_definition),
    ),
    facts(
      [
        [t("results.cost"), d.cost ?? money(summary.cost_minor)],
        [t("results.message_cost"), `${money(summary.touch1_cost_minor)} + ${money(summary.touch2_cost_minor)}`],
        [t("results.offer_cost"), d.offer_cost ?? money(summary.offer_cost_minor)],
        [t("results.cost_per_incremental"), summary.cost_per_incremental_conversion_minor === null ? "—" : (d.cost_per_incremental_conversion ?? money(summary.cost_per_incremental_conversion_minor))],
        [t("results.budget"), money(summary.budget_minor)],
        [t("results.credited_revenue"), d.credited_revenue ?? null],
        [t("results.discounts"), d.discounts ?? null],
        [
          t("results.offers_spent"),
          offers.length
            ? offers.map((o) => `${o.offer_id}: ${money(o.spent_minor)}${o.in_cost ? "" : ` (${t("results.not_in_cost")})`}`).join("; ")
            : null,
        ],
        [t("results.attribution"), evidence.length ? evidence.map(([k, v]) => `${label("evidence.", k)} ${f.int(v)}`).join(", ") : null],
      ],
      { columns: true },
    ),
  );
}

function runResults(results) {
  const view = results.run;
  if (!view) return empty(t("results.none"));
  const summary = view.summary;
  const head = h(
    "p",
    { class: "run-line" },
    h("span", {}, t("results.run", { run: view.run.run_id })),
    " ",
    badge(label("exec.", view.status), view.status === "SUCCEEDED" ? "good" : view.status === "FAILED" ? "bad" : "info"),
    " ",
    h("span", { class: "muted" }, f.dateTime(view.run.at)),
  );
  if (!summary) return [head, empty(t("results.not_summarized"))];
  const treated = summary.treatment;
  const held = summary.holdout;
  return [
    head,
    h(
      "div",
      { class: "stat-row stat-row-wide" },
      stat(t("results.conversion_treated"), f.pct(summary.treatment_rate), { metric: "treatment_rate", note: t("results.n_of_m", { n: f.int(treated.converted), m: f.int(treated.size) }) }),
      stat(t("results.conversion_holdout"), f.pct(summary.holdout_rate), { metric: "holdout_rate", note: t("results.n_of_m", { n: f.int(held.converted), m: f.int(held.size) }) }),
      stat(t("results.lift"), summary.absolute_lift === null ? "—" : f.points(summary.absolute_lift)),
      stat(t("results.incremental_revenue"), summary.display?.incremental_revenue ?? f.money(summary.incremental_revenue_minor, summary.currency), { metric: "incremental_revenue" }),
      stat(t("results.roi"), summary.roi === null ? "—" : f.num(summary.roi, 2)),
      stat(t("results.cost"), summary.display?.cost ?? f.money(summary.cost_minor, summary.currency)),
    ),
    h(
      "div",
      { class: "results-grid" },
      h("section", { class: "panel", "aria-label": t("results.funnel") }, h("h3", {}, t("results.funnel")), funnelBars(summary, results.receipts)),
      h(
        "section",
        { class: "panel", "aria-label": t("results.conversion") },
        h("h3", {}, t("results.conversion")),
        liftBlock(summary.conversion_lift, { treatedLabel: t("results.treated"), controlLabel: t("results.held_out"), caption: t("results.conversion") }),
      ),
      h("section", { class: "panel", "aria-label": t("results.revenue") }, h("h3", {}, t("results.revenue")), revenueBlock(summary)),
      h("section", { class: "panel", "aria-label": t("results.roi_cost") }, h("h3", {}, t("results.roi_cost")), roiBlock(summary)),
    ),
    variantsBlock(summary.variants, (name) => name),
    h("h3", { class: "subhead" }, t("results.messages")),
    messagesByChannel(view.messages),
  ];
}

// ---- a journey ------------------------------------------------------------------------------------------------

function journeyResults(results, definition) {
  const j = results.journey;
  if (!j) return empty(t("results.none"));
  const currency = definition.budget?.currency;
  const entered = (j.entered.treatment || 0) + (j.entered.holdout || 0);
  const statuses = [...new Set([...Object.keys(j.by_status.treatment || {}), ...Object.keys(j.by_status.holdout || {})])];
  const kept = Object.entries(j.messages || {}).filter(([k]) => k !== "sent");
  const steps = j.steps || [];
  const maxReached = Math.max(1, j.entered.treatment || 0);
  return [
    h(
      "div",
      { class: "stat-row stat-row-wide" },
      stat(t("journey.entered"), f.int(entered), { metric: "journey.entered", note: t("journey.entered_split", { treated: f.int(j.entered.treatment || 0), holdout: f.int(j.entered.holdout || 0) }) }),
      stat(t("results.conversion_treated"), f.pct(j.conversion_rate.treatment), { metric: "journey.rate.treatment", note: t("results.n_of_m", { n: f.int(j.converted.treatment || 0), m: f.int(j.entered.treatment || 0) }) }),
      stat(t("results.conversion_holdout"), f.pct(j.conversion_rate.holdout), { metric: "journey.rate.holdout", note: t("results.n_of_m", { n: f.int(j.converted.holdout || 0), m: f.int(j.entered.holdout || 0) }) }),
      stat(t("journey.sent"), f.int(j.messages?.sent || 0), { metric: "journey.sent" }),
      stat(t("journey.spent"), f.money(j.spent_minor, currency), { metric: "journey.spent" }),
    ),
    h(
      "div",
      { class: "results-grid" },
      h(
        "section",
        { class: "panel", "aria-label": t("results.conversion") },
        h("h3", {}, t("results.conversion")),
        liftBlock(j.lift, { treatedLabel: t("results.treated"), controlLabel: t("results.held_out"), caption: t("results.conversion") }),
      ),
      h(
        "section",
        { class: "panel", "aria-label": t("journey.by_status") },
        h("h3", {}, t("journey.by_status")),
        table(
          [
            [t("journey.group"), ([group]) => label("group.", group)],
            ...statuses.map((s) => [label("jstatus.", s), ([, by]) => f.int(by[s] || 0), { numeric: true }]),
          ],
          [
            ["treatment", j.by_status.treatment || {}],
            ["holdout", j.by_status.holdout || {}],
          ],
        ),
        kept.length
          ? facts(kept.map(([reason, n]) => [label("reason.", reason), f.int(n)]), { columns: true })
          : null,
      ),
    ),
    h("h3", { class: "subhead" }, t("journey.steps")),
    steps.length
      ? table(
          [
            [t("journey.step"), (s) => [code(s.step), h("div", { class: "muted small" }, [label("kind.", s.kind), s.channel ? ` · ${label("channel.", s.channel)}` : ""])]],
            [
              t("journey.reached"),
              (s) => bars([{ label: "", value: s.reached, metric: `journey.steps.${s.step}.reached`, text: f.int(s.reached) }], { max: maxReached }),
            ],
            [t("journey.reached_holdout"), (s) => (s.reached_holdout === null ? "—" : f.int(s.reached_holdout)), { numeric: true }],
            [t("journey.sent"), (s) => (s.kind === "send" ? f.int(s.sent) : "—"), { numeric: true }],
            [
              t("journey.kept_back"),
              (s) => {
                const n = Object.values(s.suppressed || {}).reduce((a, b) => a + b, 0);
                return n ? h("span", { title: Object.entries(s.suppressed).map(([k, v]) => `${label("reason.", k)}: ${v}`).join(", ") }, f.int(n)) : "—";
              },
              { numeric: true },
            ],
            [t("journey.failed"), (s) => (s.kind === "send" ? f.int(s.failed) : "—"), { numeric: true }],
            [t("journey.delivered"), (s) => (s.kind === "send" ? f.int(s.delivered) : "—"), { numeric: true }],
            [t("journey.opened"), (s) => (s.kind === "send" ? f.int(s.opened) : "—"), { numeric: true }],
            [t("journey.clicked"), (s) => (s.kind === "send" ? f.int(s.clicked) : "—"), { numeric: true }],
          ],
          steps,
          { caption: t("journey.steps"), rowClass: (s) => (s.reached ? null : "row-quiet") },
        )
      : empty(t("journey.no_steps")),
    variantsBlock(j.variants, (name) => name),
    h("h3", { class: "subhead" }, t("results.messages")),
    messagesByChannel(j.message_status),
  ];
}

// ---- runs and actions -------------------------------------------------------------------------------------

function runsCard(ctx, campaignId, selected) {
  const { el, body } = card(t("campaigns.runs"), { id: "campaign-runs" });
  const load = fill(body, async () => {
    const answer = await get(`${campaignPath(campaignId)}/runs`, { query: { brand_id: ctx.brand }, signal: ctx.signal });
    if (!answer.runs.length) return empty(t("campaigns.no_runs"));
    return table(
      [
        [
          t("campaigns.run"),
          (r) =>
            h(
              "a",
              {
                href: `#/campaigns/${encodeURIComponent(campaignId)}/runs/${encodeURIComponent(r.run.run_id)}`,
                "aria-current": r.run.run_id === selected ? "true" : null,
              },
              f.dateTime(r.run.at),
            ),
        ],
        [t("campaigns.trigger"), (r) => label("trigger.", r.run.trigger)],
        [t("campaigns.version"), (r) => String(r.run.version)],
        [t("campaigns.outcome"), (r) => (r.run.outcome === "skipped" ? [badge(label("outcome.", "skipped"), "warn"), " ", r.run.reason || ""] : r.status ? badge(label("exec.", r.status), r.status === "SUCCEEDED" ? "good" : r.status === "FAILED" ? "bad" : "info") : "—")],
        [t("campaigns.by"), (r) => r.run.by],
      ],
      answer.runs,
      { caption: t("campaigns.runs") },
    );
  });
  return [el, load];
}

function actions(ctx, view, reload, notice) {
  if (!hasScope(ctx.session, "campaigns:write")) return null;
  const state = view.state;
  const d = view.version.definition;
  const out = h("div", { class: "action-bar" });
  const feedback = h(
    "div",
    { class: "action-feedback", role: "status", "aria-live": "polite" },
    notice ? h("p", { class: "notice notice-good" }, notice) : null,
  );
  const confirmArea = h("div", { class: "confirm-area" });
  const perform = async (action, button) => {
    button.disabled = true;
    replace(feedback);
    try {
      const answer = await post(`${campaignPath(state.campaign_id)}/${action}`, action === "start" ? {} : undefined, {
        query: { brand_id: ctx.brand },
      });
      // the page is drawn again from the API's new state, saying what was done
      await reload(action === "start" ? t("actions.started", { run: answer.run.run_id }) : t(`actions.${action}d`));
    } catch (error) {
      button.disabled = false;
      replace(feedback, h("p", { class: "notice notice-danger", role: "alert" }, `${t("actions.failed")}: ${error.message}`));
    }
  };
  const buttons = [];
  if (!d.trigger && state.status !== "stopped") {
    const start = h("button", { type: "button", class: "button primary", dataset: { action: "start" } }, t("actions.start"));
    start.addEventListener("click", () => {
      const confirm = h("button", { type: "button", class: "button primary" }, t("actions.confirm_start"));
      const cancel = h("button", { type: "button", class: "button secondary" }, t("common.cancel"));
      confirm.addEventListener("click", () => perform("start", confirm).then(() => replace(confirmArea)));
      cancel.addEventListener("click", () => {
        replace(confirmArea);
        start.focus();
      });
      replace(
        confirmArea,
        h(
          "div",
          { class: "confirm", role: "group", "aria-label": t("actions.start") },
          h("p", {}, t("actions.start_question", { version: view.version.version, sends: f.int(view.planned_sends) })),
          confirm,
          cancel,
        ),
      );
      confirm.focus();
    });
    buttons.push(start);
  }
  if (state.status === "scheduled" || state.status === "live") {
    const pause = h("button", { type: "button", class: "button secondary", dataset: { action: "pause" } }, t("actions.pause"));
    pause.addEventListener("click", () => perform("pause", pause));
    buttons.push(pause);
  }
  if (state.status === "paused") {
    const resume = h("button", { type: "button", class: "button primary", dataset: { action: "resume" } }, t("actions.resume"));
    resume.addEventListener("click", () => perform("resume", resume));
    buttons.push(resume);
  }
  if (!buttons.length) return null;
  out.append(...buttons);
  return h("div", { class: "actions" }, out, confirmArea, feedback);
}

export async function renderCampaign(ctx) {
  const [campaignId, runId] = ctx.params;
  ctx.title(t("nav.campaigns"));
  ctx.main.append(h("p", { class: "breadcrumb" }, h("a", { href: "#/campaigns" }, `← ${t("campaigns.back")}`)));
  if (!ctx.brand) {
    ctx.main.append(needBrand());
    return;
  }
  const holder = h("div", {}, loading());
  ctx.main.append(holder);
  const query = { brand_id: ctx.brand };
  let view;
  try {
    view = await get(campaignPath(campaignId), { query, signal: ctx.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    replace(holder, pageHeader(campaignId, null), errorState(error));
    return;
  }
  const draw = async (notice) => {
    const state = view.state;
    ctx.title(state.name);
    const results = card(t("campaigns.results"), { wide: true, id: "campaign-results" });
    const [runsEl, runsLoad] = view.version.definition.trigger ? [null, null] : runsCard(ctx, campaignId, runId);
    replace(
      holder,
      pageHeader(
        state.name,
        null,
        ...(hasScope(ctx.session, "campaigns:write")
          ? [h("a", { class: "button secondary", href: `#/campaigns/${encodeURIComponent(campaignId)}/edit`, id: "edit-campaign" }, t("builder.edit"))]
          : []),
      ),
      h("p", { class: "profile-meta" }, statusBadge(state.status), code(state.campaign_id), h("span", { class: "muted" }, t("campaigns.updated_by", { at: f.dateTime(state.updated_at), by: state.updated_by }))),
      actions(
        ctx,
        view,
        async (done) => {
          view = await get(campaignPath(campaignId), { query, fresh: true });
          await draw(done);
          holder.querySelector(".action-bar button")?.focus();
        },
        notice,
      ),
      h("div", { class: "cards" }, results.el, definitionCard(view), runsEl),
    );
    await Promise.all([
      fill(results.body, async () => {
        let answer;
        try {
          answer = await get(`${campaignPath(campaignId)}/results`, { query: { ...query, run_id: runId }, signal: ctx.signal });
        } catch (error) {
          if (error.status === 404 || error.status === 409) return [empty(t("results.none")), h("p", { class: "muted small" }, error.message)];
          throw error;
        }
        return answer.kind === "journey" ? journeyResults(answer, view.version.definition) : runResults(answer);
      }),
      runsLoad,
    ]);
  };
  await draw();
}
