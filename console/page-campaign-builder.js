// The campaign builder: define a scheduled campaign in a form (who, when, what, within which budget), check it with
// the API (each error shown next to the field its path names), save it as a draft version, run it dry and read the
// report, then start it. The form is a view of one definition object: an "advanced" JSON view of the whole
// definition stays in sync with it, so a journey pasted there keeps what the form cannot show.
// Save and Start show only to a user whose token holds campaigns:write (the API checks it again).

import { ApiError, get, post } from "./api.js";
import { hasScope } from "./auth.js";
import { bars } from "./charts.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { intlLocale, label, t } from "./i18n.js";
import { statusBadge } from "./page-campaigns.js";
import { needBrand } from "./page-home.js";
import { code, empty, errorState, facts, loading, pageHeader, stat, table } from "./ui.js";
import { fieldId, getAt, parsePath, pretty, setAt } from "./paths.js";

const CHANNELS = ["sms", "email", "push", "wechat", "webhook", "outbox", "inapp"];
const CONSENT_CHANNELS = [...CHANNELS, "all"];
const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const KEEP_NULL = new Set(["reentry_after_days"]); // a null that means something (its default is not null)
const KEEP_EMPTY = new Set(["responses"]); // an empty list that differs from its default
const TOP_DEFAULTS = {
  reentry_after_days: 30,
  responses: ["message_clicked", "message_opened", "order_placed"],
  score_model: "response",
  priority: 50,
};
const CURRENT_OFFER = "__current";
const drafts = new Map(); // hash -> unsaved edits kept when the same page is drawn again (a language switch)

function campaignPath(id) {
  return `/v1/campaigns/${encodeURIComponent(id)}`;
}

// ---- the definition as data: paths, reading and writing ---------------------------------------------------------

function deleteAt(object, path) {
  const keys = parsePath(path);
  let here = object;
  for (const key of keys.slice(0, -1)) {
    if (here === null || typeof here !== "object") return;
    here = here[key];
  }
  if (here && typeof here === "object" && !Array.isArray(here)) delete here[keys.at(-1)];
}

/** A stored definition without the nulls and empty lists the API writes out for every default (the same meaning). */
function tidy(value, key) {
  if (Array.isArray(value)) return value.map((v) => tidy(v));
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [name, item] of Object.entries(value)) {
    if (item === null && !KEEP_NULL.has(name)) continue;
    if (Array.isArray(item) && !item.length && !KEEP_EMPTY.has(name)) continue;
    if (name === "paths" && key === undefined && item && !Object.keys(item).length) continue;
    out[name] = tidy(item, name);
  }
  return out;
}

/** Without the values the API fills in for what was left out (the same meaning, and a form that shows it all). */
function withoutDefaults(definition) {
  for (const [name, value] of Object.entries(TOP_DEFAULTS)) {
    if (JSON.stringify(definition[name]) === JSON.stringify(value)) delete definition[name];
  }
  const lists = [definition.steps, ...Object.values(definition.paths || {}), ...(definition.variants || []).map((v) => v && v.steps)];
  for (const steps of lists) {
    for (const step of Array.isArray(steps) ? steps : []) {
      if (step && step.send && typeof step.send === "object") {
        if (step.send.purpose === "marketing") delete step.send.purpose;
        if (step.send.to === "everyone") delete step.send.to;
      }
      for (const wait of [step && step.wait, step && step.wait_for && step.wait_for.timeout]) {
        if (!wait || typeof wait !== "object") continue;
        for (const unit of ["hours", "minutes"]) if (wait[unit] === 0) delete wait[unit];
        if (wait.days === 0 && (wait.hours || wait.minutes || wait.until)) delete wait.days;
      }
    }
  }
  return definition;
}

function currencyDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

function blankDefinition(brand) {
  return {
    campaign_id: "",
    brand_id: brand,
    name: "",
    audience: {},
    steps: [{ send: { channel: "sms", template: { body: "" } } }],
    budget: { currency: "CNY", cost_per_message_minor: {} },
    holdout: 0.1,
    conversion_window_days: 14,
  };
}

function stepKind(step) {
  if (!step || typeof step !== "object") return null;
  return ["send", "wait", "wait_for", "branch", "split", "goto", "exit"].find((k) => step[k] !== undefined && step[k] !== null) || null;
}

function usedChannels(definition) {
  const out = [];
  const visit = (steps) => {
    for (const step of Array.isArray(steps) ? steps : []) {
      const send = step && step.send;
      if (!send) continue;
      for (const channel of [send.channel, ...(Array.isArray(send.or_channels) ? send.or_channels : [])]) {
        if (typeof channel === "string" && channel && !out.includes(channel)) out.push(channel);
      }
    }
  };
  visit(definition.steps);
  for (const steps of Object.values(definition.paths || {})) visit(steps);
  return out;
}

/** A local date ("2026-12-16", the brand's calendar) in the console's language, whatever the browser's zone. */
function day(text) {
  const value = new Date(`${text}T00:00:00Z`);
  if (Number.isNaN(value.getTime())) return text;
  return new Intl.DateTimeFormat(intlLocale(), { dateStyle: "medium", timeZone: "UTC" }).format(value);
}

// ---- the page ----------------------------------------------------------------------------------------------------

export async function render(ctx) {
  const [campaignId] = ctx.params;
  ctx.title(t("builder.title_new"));
  ctx.main.append(h("p", { class: "breadcrumb" }, h("a", { href: "#/campaigns" }, `← ${t("campaigns.back")}`)));
  if (!ctx.brand) {
    ctx.main.append(pageHeader(t("builder.title_new"), null), needBrand());
    return;
  }
  const holder = h("div", {}, loading());
  ctx.main.append(holder);
  const query = { brand_id: ctx.brand };
  const optional = (promise) => promise.catch((error) => (error && error.name === "AbortError" ? Promise.reject(error) : { error }));
  const [view, audiences, offers] = await Promise.all([
    campaignId ? optional(get(campaignPath(campaignId), { query, signal: ctx.signal, fresh: true })) : null,
    optional(get("/v1/audiences", { signal: ctx.signal })),
    optional(get("/v1/offers", { query, signal: ctx.signal })),
  ]);
  if (view && view.error) {
    replace(holder, pageHeader(campaignId, null), errorState(view.error));
    return;
  }
  builder(ctx, holder, { view, audiences, offers });
}

function builder(ctx, holder, { view, audiences, offers }) {
  const canWrite = hasScope(ctx.session, "campaigns:write");
  const query = { brand_id: ctx.brand };
  const state = {
    def: blankDefinition(ctx.brand),
    saved: null, // the stored version: {id, name, version, status, planned_sends, journey, scheduled, json}
    errors: [], // [{field, message}] of the last check
    jsonProblem: null,
  };
  const adopt = (campaignView) => {
    state.def = withoutDefaults(tidy(campaignView.version.definition));
    state.saved = {
      id: campaignView.state.campaign_id,
      name: campaignView.state.name,
      version: campaignView.version.version,
      status: campaignView.state.status,
      planned_sends: campaignView.planned_sends,
      journey: Boolean(state.def.trigger),
      scheduled: Boolean(state.def.schedule),
      json: pretty(state.def),
    };
  };
  if (view) adopt(view);
  const kept = drafts.get(window.location.hash);
  drafts.clear();
  if (kept && kept.version === (state.saved ? state.saved.version : null)) {
    state.def = kept.def;
    state.errors = kept.errors;
  }
  ctx.signal.addEventListener("abort", () => {
    // the shell draws the page again for the same address (another language): what was typed stays
    const here = state.saved ? `#/campaigns/${encodeURIComponent(state.saved.id)}/edit` : "#/campaigns/new";
    if (window.location.hash === here && dirty()) {
      drafts.set(here, { def: JSON.parse(pretty(state.def)), errors: state.errors, version: state.saved ? state.saved.version : null });
    }
  });

  // ---- the page's parts
  const header = h("div", { class: "builder-header" });
  const errorsBox = h("div", { class: "builder-errors", id: "builder-errors", tabindex: "-1", role: "alert" });
  const formHolder = h("div", { class: "builder-fields" });
  const jsonArea = h("textarea", {
    id: "builder-json",
    class: "builder-json",
    rows: "24",
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "builder-json-hint builder-json-error",
  });
  const jsonError = h("p", { class: "field-error", id: "builder-json-error", "aria-live": "polite" });
  const advanced = h(
    "details",
    { class: "builder-advanced", id: "builder-advanced" },
    h("summary", {}, t("builder.advanced")),
    h(
      "div",
      { class: "field" },
      h("label", { for: "builder-json" }, t("builder.json_label")),
      h("p", { class: "hint", id: "builder-json-hint" }, t("builder.json_hint")),
      jsonArea,
      jsonError,
    ),
  );
  const feedback = h("div", { class: "action-feedback", id: "builder-feedback", role: "status", "aria-live": "polite" });
  const saveState = h("p", { class: "builder-save-state muted small", id: "builder-save-state" });
  const checkBox = h("section", { class: "panel builder-check", id: "builder-check", "aria-label": t("builder.check"), hidden: true });
  const dryBox = h("section", { class: "panel builder-dry-run", id: "builder-dry-run", "aria-label": t("builder.dry_run"), hidden: true });
  const confirmArea = h("div", { class: "confirm-area" });
  const buttons = {
    validate: h("button", { type: "button", class: "button secondary", id: "builder-validate", dataset: { action: "validate" } }, t("builder.validate")),
    save: canWrite ? h("button", { type: "button", class: "button primary", id: "builder-save", dataset: { action: "save" } }, t("builder.save")) : null,
    dryRun: h("button", { type: "button", class: "button secondary", id: "builder-dry-run-button", dataset: { action: "dry-run" }, "aria-describedby": "builder-dry-run-hint" }, t("builder.dry_run")),
    start: canWrite ? h("button", { type: "button", class: "button primary", id: "builder-start", dataset: { action: "start" } }, t("builder.start")) : null,
    activate: canWrite ? h("button", { type: "button", class: "button secondary", id: "builder-activate", dataset: { action: "activate" } }, t("builder.activate")) : null,
  };
  const dryHint = h("p", { class: "hint", id: "builder-dry-run-hint" });
  const form = h(
    "form",
    { class: "builder-form", id: "builder-form", novalidate: true, "aria-label": t("builder.form") },
    errorsBox,
    formHolder,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    validate();
  });

  // ---- the fields: each edits one path of the definition
  let registry = new Map(); // path -> {controls, error}
  let shownErrors = "[]";

  const register = (path, controls, error) => {
    registry.set(path, { controls: Array.isArray(controls) ? controls : [controls], error });
  };

  const changed = ({ rerender = false } = {}) => {
    if (rerender) drawForm();
    if (document.activeElement !== jsonArea) jsonArea.value = pretty(state.def);
    state.jsonProblem = null;
    markJson();
    refreshActions();
  };

  /** Clear the error of the field at `path` once the user edits it (the next check says again). */
  const edited = (path) => {
    const before = state.errors.length;
    state.errors = state.errors.filter((e) => e.field !== path);
    if (state.errors.length !== before) showErrors(false);
  };

  /** A labelled field; `read` gives the control's value from the definition, `write` puts it back. */
  function field(path, labelText, control, { hint, read, write, event = "input", rerender = false, wide = false, aliases = [] } = {}) {
    const id = fieldId(path);
    control.id = id;
    if (!control.name) control.name = path;
    const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
    const value = read ? read() : getAt(state.def, path);
    if (control.type === "checkbox") control.checked = Boolean(value);
    else control.value = value === undefined || value === null ? "" : String(value);
    control.addEventListener(event, () => {
      if (write) write(control.value);
      else if (control.value === "") deleteAt(state.def, path);
      else setAt(state.def, path, control.value);
      edited(path);
      changed({ rerender });
    });
    register(path, control, error);
    for (const alias of aliases) register(alias, control, error);
    return h(
      "div",
      { class: ["field", wide && "field-wide"] },
      h("label", { for: id }, labelText),
      control,
      hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
      error,
    );
  }

  const text = (path, labelText, options = {}) =>
    field(path, labelText, h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...(options.attrs || {}) }), {
      write: options.optional
        ? (v) => (v === "" ? deleteAt(state.def, path) : setAt(state.def, path, v))
        : (v) => setAt(state.def, path, v),
      ...options,
    });

  const numberToDefinition = (path, v, scale = (x) => x) => {
    if (v === "") deleteAt(state.def, path);
    else setAt(state.def, path, scale(Number(v)));
  };

  const integer = (path, labelText, options = {}) =>
    field(path, labelText, h("input", { type: "number", inputmode: "numeric", step: "1", min: "0", ...(options.attrs || {}) }), {
      write: (v) => numberToDefinition(path, v),
      ...options,
    });

  const currency = () => {
    const c = getAt(state.def, "budget.currency");
    return typeof c === "string" && /^[A-Z]{3}$/.test(c) ? c : null;
  };

  const money = (path, labelText, options = {}) => {
    const digits = currencyDigits(currency() || "CNY");
    return field(path, labelText, h("input", { type: "number", inputmode: "decimal", step: String(10 ** -digits), min: "0" }), {
      read: () => {
        const minor = getAt(state.def, path);
        return typeof minor === "number" ? String(minor / 10 ** digits) : minor;
      },
      write: (v) => numberToDefinition(path, v, (x) => Math.round(x * 10 ** digits)),
      ...options,
    });
  };

  const select = (path, labelText, choices, options = {}) =>
    field(
      path,
      labelText,
      h("select", {}, choices.map(([value, name]) => h("option", { value }, name))),
      { event: "change", ...options },
    );

  // ---- the form's sections

  function basics() {
    const saved = Boolean(state.saved);
    return section(
      "basics",
      t("builder.section_basics"),
      h(
        "div",
        { class: "builder-grid" },
        text("campaign_id", t("builder.campaign_id"), {
          hint: saved ? t("builder.campaign_id_fixed") : t("builder.campaign_id_hint"),
          attrs: saved ? { readonly: true } : {},
        }),
        text("name", t("builder.name"), { attrs: { spellcheck: "true" } }),
        field("description", t("builder.description"), h("textarea", { rows: "2" }), {
          write: (v) => (v === "" ? deleteAt(state.def, "description") : setAt(state.def, "description", v)),
          wide: true,
        }),
      ),
    );
  }

  function audienceSection() {
    const list = audiences && !audiences.error ? audiences.audiences : [];
    const failed = audiences && audiences.error;
    const conditions = Array.isArray(getAt(state.def, "audience.all_of")) ? getAt(state.def, "audience.all_of") : [];
    const others = ["any_of", "none_of"].reduce((n, k) => n + (Array.isArray(getAt(state.def, `audience.${k}`)) ? getAt(state.def, `audience.${k}`).length : 0), 0);
    return section(
      "audience",
      t("builder.section_audience"),
      h(
        "div",
        { class: "builder-grid" },
        // picked from the saved audiences the user may list, or typed (a key limited to a brand lists only the
        // audiences bound to it, or none)
        text("audience.audience_id", t("builder.audience"), {
          optional: true,
          attrs: { list: "builder-audiences" },
          hint: failed
            ? failed.status === 403
              ? t("builder.audience_type_id")
              : `${t("builder.audiences_failed")}: ${failed.message}`
            : t("builder.audience_hint"),
        }),
        h(
          "datalist",
          { id: "builder-audiences" },
          list.map((a) => h("option", { value: a.id, label: `${a.name} · ${label("builder.kind_", a.kind)}` })),
        ),
        select(
          "audience.require_consent_channel",
          t("builder.consent"),
          [["", t("builder.consent_default")], ...CONSENT_CHANNELS.map((c) => [c, label("channel.", c)])],
          { hint: t("builder.consent_hint") },
        ),
      ),
      h("h4", { class: "builder-subhead" }, t("builder.conditions")),
      conditions.length
        ? h("ol", { class: "builder-conditions" }, conditions.map((condition, i) => conditionRow(condition, i)))
        : h("p", { class: "hint" }, t("builder.no_conditions")),
      others ? h("p", { class: "hint" }, t("builder.more_conditions", { n: others })) : null,
      h(
        "button",
        {
          type: "button",
          class: "button secondary small",
          id: "builder-add-condition",
          on: {
            click: () => {
              const list2 = Array.isArray(getAt(state.def, "audience.all_of")) ? getAt(state.def, "audience.all_of") : [];
              list2.push({ tag: "", equals: "" });
              setAt(state.def, "audience.all_of", list2);
              changed({ rerender: true });
              document.getElementById(fieldId(`audience.all_of[${list2.length - 1}].tag`))?.focus();
            },
          },
        },
        t("builder.add_condition"),
      ),
    );
  }

  function conditionRow(condition, i) {
    const base = `audience.all_of[${i}]`;
    if (!condition || typeof condition !== "object" || condition.equals === undefined) {
      return h("li", { class: "builder-condition" }, code(JSON.stringify(condition)), h("span", { class: "hint" }, t("builder.json_only")), removeButton(() => removeAt("audience.all_of", i), t("builder.remove_condition", { n: i + 1 })));
    }
    const kind = typeof condition.equals === "boolean" ? String(condition.equals) : typeof condition.equals === "number" ? "number" : "text";
    const testId = `${fieldId(base)}-test`;
    const test = h(
      "select",
      { id: testId, name: `${base}.test` },
      [
        ["text", t("builder.test_text")],
        ["number", t("builder.test_number")],
        ["true", t("builder.test_true")],
        ["false", t("builder.test_false")],
      ].map(([value, name]) => h("option", { value }, name)),
    );
    test.value = kind;
    test.addEventListener("change", () => {
      const v = test.value;
      const now = getAt(state.def, `${base}.equals`);
      if (v === "true" || v === "false") setAt(state.def, `${base}.equals`, v === "true");
      else if (v === "number") setAt(state.def, `${base}.equals`, Number(now) || 0);
      else setAt(state.def, `${base}.equals`, typeof now === "boolean" ? "" : String(now ?? ""));
      changed({ rerender: true });
    });
    const isBool = kind === "true" || kind === "false";
    return h(
      "li",
      { class: "builder-condition" },
      text(`${base}.tag`, t("builder.tag")),
      h("div", { class: "field" }, h("label", { for: testId }, t("builder.test")), test),
      isBool
        ? null
        : field(`${base}.equals`, t("builder.value"), h("input", { type: kind === "number" ? "number" : "text", autocomplete: "off" }), {
            write: (v) => setAt(state.def, `${base}.equals`, kind === "number" ? (v === "" ? "" : Number(v)) : v),
            aliases: [base, `${base}.in`],
          }),
      removeButton(() => removeAt("audience.all_of", i), t("builder.remove_condition", { n: i + 1 })),
    );
  }

  function removeAt(listPath, i) {
    const list = getAt(state.def, listPath);
    if (Array.isArray(list)) list.splice(i, 1);
    state.errors = [];
    changed({ rerender: true });
    showErrors(false);
  }

  function removeButton(action, name) {
    return h("button", { type: "button", class: "button secondary small builder-remove", "aria-label": name, title: name, on: { click: action } }, t("builder.remove"));
  }

  function scheduleSection() {
    const trigger = getAt(state.def, "trigger");
    if (trigger) {
      return section("schedule", t("builder.section_when"), h("p", { class: "hint" }, t("builder.trigger_note")), code(JSON.stringify(trigger)));
    }
    const schedule = getAt(state.def, "schedule");
    const kind = !schedule ? "none" : schedule.every ? "weekly" : "once";
    const radios = h(
      "fieldset",
      { class: "builder-choice", id: "schedule-kind" },
      h("legend", {}, t("builder.schedule")),
      [
        ["none", t("builder.schedule_none")],
        ["once", t("builder.schedule_once")],
        ["weekly", t("builder.schedule_weekly")],
      ].map(([value, name]) => {
        const radio = h("input", { type: "radio", name: "schedule-kind", id: `schedule-kind-${value}`, value });
        radio.checked = value === kind;
        radio.addEventListener("change", () => {
          const keep = {};
          for (const k of ["timezone", "starts_on", "ends_on"]) if (schedule && schedule[k]) keep[k] = schedule[k];
          if (value === "none") delete state.def.schedule;
          else if (value === "once") state.def.schedule = { ...keep, once: (schedule && schedule.once) || tomorrowAt10() };
          else state.def.schedule = { ...keep, every: (schedule && schedule.every) || { weekdays: ["monday"], at: "10:00" } };
          state.errors = state.errors.filter((e) => !e.field.startsWith("schedule"));
          changed({ rerender: true });
          showErrors(false);
        });
        return h("label", { class: "builder-radio", for: `schedule-kind-${value}` }, radio, h("span", {}, name));
      }),
    );
    const parts = [radios];
    if (kind === "once") {
      parts.push(
        field("schedule.once", t("builder.once_at"), h("input", { type: "datetime-local" }), {
          hint: t("builder.local_time"),
          write: (v) => setAt(state.def, "schedule.once", v),
        }),
      );
    }
    if (kind === "weekly") parts.push(weekdays(), field("schedule.every.at", t("builder.at"), h("input", { type: "time" }), { hint: t("builder.local_time"), read: () => String(getAt(state.def, "schedule.every.at") || "").slice(0, 5), write: (v) => setAt(state.def, "schedule.every.at", v) }));
    if (schedule && (schedule.timezone || schedule.starts_on || schedule.ends_on)) parts.push(h("p", { class: "hint" }, t("builder.schedule_more")));
    return section("schedule", t("builder.section_when"), h("div", { class: "builder-grid" }, parts));
  }

  function tomorrowAt10() {
    const at = new Date(Date.now() + 86_400_000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T10:00`;
  }

  function weekdays() {
    const path = "schedule.every.weekdays";
    const id = fieldId(path);
    const chosen = getAt(state.def, path);
    const boxes = WEEKDAYS.map((d) => {
      const box = h("input", { type: "checkbox", id: `${id}-${d}`, name: path, value: d, "aria-describedby": `${id}-error ${id}-hint` });
      box.checked = Array.isArray(chosen) && chosen.includes(d);
      box.addEventListener("change", () => {
        const picked = boxes.filter((b) => b.checked).map((b) => b.value);
        if (picked.length) setAt(state.def, path, picked);
        else deleteAt(state.def, path);
        edited(path);
        changed();
      });
      return box;
    });
    const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    register(path, boxes, error);
    return h(
      "fieldset",
      { class: "builder-choice builder-weekdays", id },
      h("legend", {}, t("builder.weekdays")),
      boxes.map((box, i) => h("label", { class: "builder-check-label", for: box.id }, box, h("span", {}, label("weekday.", WEEKDAYS[i])))),
      h("p", { class: "hint", id: `${id}-hint` }, t("builder.weekdays_hint")),
      error,
    );
  }

  function stepsSection() {
    const steps = Array.isArray(state.def.steps) ? state.def.steps : [];
    const catalog = offers && !offers.error ? offers.offers : [];
    const add = (kind) => {
      if (!Array.isArray(state.def.steps)) state.def.steps = [];
      const sends = state.def.steps.filter((s) => s && s.send).length;
      const channel = (state.def.steps.find((s) => s && s.send) || { send: { channel: "sms" } }).send.channel || "sms";
      const step =
        kind === "wait"
          ? { wait: { days: 3 } }
          : { send: { channel, template: { body: "" }, ...(sends && !state.def.trigger ? { to: "not_converted" } : {}) } };
      state.def.steps.push(step);
      changed({ rerender: true });
      const first = kind === "wait" ? "wait.days" : "send.channel";
      document.getElementById(fieldId(`steps[${state.def.steps.length - 1}].${first}`))?.focus();
    };
    return section(
      "steps",
      t("builder.section_steps"),
      h("p", { class: "hint" }, t("builder.steps_hint")),
      h("ol", { class: "builder-steps" }, steps.map((step, i) => stepItem(step, i, catalog))),
      h(
        "div",
        { class: "builder-add" },
        h("button", { type: "button", class: "button secondary small", id: "builder-add-send", on: { click: () => add("send") } }, t("builder.add_send")),
        h("button", { type: "button", class: "button secondary small", id: "builder-add-wait", on: { click: () => add("wait") } }, t("builder.add_wait")),
      ),
      offers && offers.error ? h("p", { class: "hint" }, `${t("builder.offers_failed")}: ${offers.error.message}`) : null,
    );
  }

  function stepItem(step, i, catalog) {
    const base = `steps[${i}]`;
    const kind = stepKind(step);
    const remove = removeButton(() => removeAt("steps", i), t("builder.remove_step", { n: i + 1 }));
    const head = (title) => h("div", { class: "builder-step-head" }, h("h4", {}, t("builder.step_n", { n: i + 1 }), " · ", title), remove);
    if (kind === "send") {
      const send = step.send;
      const offer = send.offer;
      const catalogIds = catalog.map((o) => o.offer.offer_id);
      const offerChoices = [["", t("builder.offer_none")], ...catalog.map((o) => [o.offer.offer_id, `${o.offer.name} (${o.offer.offer_id})`])];
      let offerValue = "";
      if (offer && offer.offer_id && catalogIds.includes(offer.offer_id)) offerValue = offer.offer_id;
      else if (offer) {
        offerValue = CURRENT_OFFER;
        offerChoices.push([CURRENT_OFFER, offer.offer_id ? offer.offer_id : t("builder.offer_code", { coupon: offer.coupon_id || "—", code: offer.code || "—" })]);
      }
      const channels = [send.channel, ...CHANNELS.filter((c) => c !== send.channel)].filter(Boolean);
      const hasSubject = send.channel === "email" || Boolean(send.template && send.template.subject !== undefined);
      return h(
        "li",
        { class: "builder-step", dataset: { step: String(i), kind } },
        head(t("builder.kind_send")),
        h(
          "div",
          { class: "builder-grid" },
          select(`${base}.send.channel`, t("builder.channel"), channels.map((c) => [c, label("channel.", c)]), {
            rerender: true,
            aliases: hasSubject ? [] : [`${base}.send`], // what the channel needs (a WeChat template, no repeats)
          }),
          select(
            `${base}.send.to`,
            t("builder.to"),
            [
              ["everyone", t("builder.to_everyone")],
              ["not_converted", t("builder.to_not_converted")],
            ],
            {
              read: () => send.to || "everyone",
              write: (v) => {
                if (v === "everyone") delete send.to;
                else send.to = v;
              },
            },
          ),
          hasSubject
            ? text(`${base}.send.template.subject`, t("builder.subject"), {
                optional: true,
                attrs: { spellcheck: "true" },
                wide: true,
                aliases: [`${base}.send`], // "an email template needs a subject"
              })
            : null,
          field(`${base}.send.template.body`, t("builder.body"), h("textarea", { rows: "3", spellcheck: "true" }), {
            hint: t("builder.body_hint"),
            write: (v) => setAt(state.def, `${base}.send.template.body`, v),
            wide: true,
          }),
          field(`${base}.send.offer`, t("builder.offer"), h("select", {}, offerChoices.map(([value, name]) => h("option", { value }, name))), {
            event: "change",
            read: () => offerValue,
            write: (v) => {
              if (v === "") delete send.offer;
              else if (v !== CURRENT_OFFER) send.offer = { offer_id: v };
            },
            hint: t("builder.offer_hint"),
            aliases: [`${base}.send.offer.offer_id`, `${base}.send.offer.coupon_id`, `${base}.send.offer.code`],
            wide: true,
          }),
        ),
        send.or_channels || send.purpose || (send.template && (send.template.sms || send.template.wechat || send.template.link)) ? h("p", { class: "hint" }, t("builder.more_in_json")) : null,
      );
    }
    if (kind === "wait") {
      return h(
        "li",
        { class: "builder-step", dataset: { step: String(i), kind } },
        head(t("builder.kind_wait")),
        h(
          "div",
          { class: "builder-grid" },
          integer(`${base}.wait.days`, t("builder.wait_days"), { aliases: [`${base}.wait`] }),
          integer(`${base}.wait.hours`, t("builder.wait_hours")),
        ),
        step.wait.minutes || step.wait.until ? h("p", { class: "hint" }, t("builder.more_in_json")) : null,
      );
    }
    return h(
      "li",
      { class: "builder-step", dataset: { step: String(i), kind: kind || "unknown" } },
      head(kind ? label("kind.", kind) : t("builder.kind_unknown")),
      h("pre", { class: "builder-step-json" }, JSON.stringify(step, null, 2)),
      h("p", { class: "hint" }, t("builder.json_only")),
    );
  }

  function budgetSection() {
    const c = currency() || "—";
    const costs = getAt(state.def, "budget.cost_per_message_minor");
    const channels = [...usedChannels(state.def), ...Object.keys(costs && typeof costs === "object" ? costs : {})].filter((v, i, all) => all.indexOf(v) === i);
    return section(
      "budget",
      t("builder.section_budget"),
      h(
        "div",
        { class: "builder-grid" },
        money("budget.amount_minor", t("builder.budget_amount", { currency: c }), { hint: t("builder.budget_hint") }),
        text("budget.currency", t("builder.currency"), {
          attrs: { maxlength: "3", class: "builder-short", autocapitalize: "characters" },
          event: "change",
          rerender: true,
          write: (v) => setAt(state.def, "budget.currency", v.trim().toUpperCase()),
        }),
        channels.map((channel) =>
          money(`budget.cost_per_message_minor.${channel}`, t("builder.cost_per_message", { channel: label("channel.", channel), currency: c })),
        ),
        integer("max_recipients", t("builder.max_recipients"), { hint: t("builder.max_recipients_hint") }),
        field("holdout", t("builder.holdout"), h("input", { type: "number", inputmode: "decimal", step: "1", min: "0", max: "99" }), {
          read: () => (typeof state.def.holdout === "number" ? String(Math.round(state.def.holdout * 10000) / 100) : state.def.holdout),
          write: (v) => numberToDefinition("holdout", v, (x) => Math.round(x * 10000) / 1_000_000),
          hint: t("builder.holdout_hint"),
        }),
        integer("conversion_window_days", t("builder.window"), { hint: t("builder.window_hint"), attrs: { min: "1", max: "365" } }),
      ),
    );
  }

  function section(name, title, ...children) {
    return h("fieldset", { class: "builder-section", id: `builder-section-${name}` }, h("legend", {}, title), children);
  }

  function drawForm() {
    const focused = document.activeElement && formHolder.contains(document.activeElement) ? document.activeElement.id : null;
    registry = new Map();
    const known = new Set(["campaign_id", "brand_id", "name", "description", "audience", "schedule", "steps", "budget", "max_recipients", "holdout", "conversion_window_days"]);
    const other = Object.keys(state.def).filter((k) => !known.has(k));
    replace(
      formHolder,
      other.length ? h("p", { class: "notice builder-json-note" }, t("builder.other_parts", { parts: other.join(", ") })) : null,
      basics(),
      audienceSection(),
      scheduleSection(),
      stepsSection(),
      budgetSection(),
    );
    showErrors(false);
    if (focused) document.getElementById(focused)?.focus();
  }

  // ---- errors next to their fields

  function showErrors(moveFocus) {
    for (const { controls, error } of registry.values()) {
      error.textContent = "";
      for (const control of controls) control.removeAttribute("aria-invalid");
    }
    const unmatched = [];
    const invalid = [];
    const key = JSON.stringify(state.errors);
    for (const problem of state.errors) {
      const entry = registry.get(problem.field);
      if (!entry) {
        unmatched.push(problem);
        continue;
      }
      entry.error.textContent = entry.error.textContent ? `${entry.error.textContent} · ${problem.message}` : problem.message;
      for (const control of entry.controls) control.setAttribute("aria-invalid", "true");
      invalid.push(entry.controls[0]);
    }
    if (key !== shownErrors) {
      shownErrors = key; // the summary is an alert: redrawn (and read out) only when it says something new
      replace(
        errorsBox,
        state.errors.length
        ? h(
            "div",
            { class: "notice notice-danger" },
            h("p", { class: "builder-errors-title" }, t("builder.errors_count", { n: state.errors.length })),
            unmatched.length
              ? [
                  h("p", {}, t("builder.errors_other")),
                  h("ul", { class: "builder-error-list" }, unmatched.map((e) => h("li", { dataset: { field: e.field } }, code(e.field), " ", h("span", {}, e.message)))),
                ]
              : null,
          )
        : null,
      );
    }
    if (!moveFocus) return;
    invalid.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    if (invalid.length) invalid[0].focus();
    else if (state.errors.length) errorsBox.focus();
  }

  function markJson() {
    jsonError.textContent = state.jsonProblem || "";
    if (state.jsonProblem) jsonArea.setAttribute("aria-invalid", "true");
    else jsonArea.removeAttribute("aria-invalid");
  }

  jsonArea.addEventListener("input", () => {
    let parsed;
    try {
      parsed = JSON.parse(jsonArea.value);
    } catch (error) {
      state.jsonProblem = `${t("builder.json_invalid")}: ${error.message}`;
      markJson();
      refreshActions();
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      state.jsonProblem = t("builder.json_not_object");
      markJson();
      refreshActions();
      return;
    }
    state.def = parsed;
    state.jsonProblem = null;
    markJson();
    drawForm();
    refreshActions();
  });

  /** Nothing is sent while the JSON view holds text that is not a definition. */
  function jsonReady() {
    if (!state.jsonProblem) return true;
    advanced.open = true;
    jsonArea.focus();
    return false;
  }

  // ---- actions

  const dirty = () => !state.saved || state.saved.json !== pretty(state.def);

  function refreshActions() {
    const saved = state.saved;
    buttons.dryRun.disabled = !saved;
    dryHint.textContent = !saved ? t("builder.dry_run_needs_save") : dirty() ? t("builder.dry_run_saved_only", { version: saved.version }) : t("builder.dry_run_hint", { version: saved.version });
    if (buttons.start) buttons.start.hidden = !saved || saved.journey || saved.status === "stopped";
    if (buttons.activate) buttons.activate.hidden = !saved || saved.status !== "draft" || !(saved.scheduled || saved.journey);
    saveState.textContent = !saved ? t("builder.not_saved") : dirty() ? t("builder.unsaved_changes", { version: saved.version }) : t("builder.saved_as", { version: saved.version });
  }

  function say(node) {
    replace(feedback, node);
  }

  async function busy(button, work) {
    const all = Object.values(buttons).filter(Boolean);
    const before = all.map((b) => b.disabled);
    const focused = document.activeElement === button;
    for (const b of all) b.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await work();
    } finally {
      button.removeAttribute("aria-busy");
      all.forEach((b, i) => {
        b.disabled = before[i];
      });
      refreshActions();
      // a button disabled while it had focus loses it: give it back unless the work moved it on purpose
      if (focused && button.isConnected && (!document.activeElement || document.activeElement === document.body)) button.focus();
    }
  }

  function problemsOf(error) {
    if (error instanceof ApiError && error.errors && error.errors.length) return error.errors;
    if (error instanceof ApiError && (error.status === 400 || error.status === 422) && error.field) return [{ field: error.field, message: error.message }];
    return null;
  }

  async function validate() {
    if (!jsonReady()) return;
    await busy(buttons.validate, async () => {
      say(null);
      hide(checkBox);
      try {
        const report = await post("/v1/campaigns/validate", state.def, { query });
        state.errors = report.errors || [];
        showErrors(!report.valid);
        drawCheck(report);
      } catch (error) {
        const found = problemsOf(error);
        if (!found) {
          say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("builder.failed")}: ${error.message}`));
          return;
        }
        state.errors = found;
        showErrors(true);
        drawCheck({ valid: false, errors: found });
      }
    });
  }

  async function save() {
    if (!jsonReady()) return;
    await busy(buttons.save, async () => {
      say(null);
      const id = state.def.campaign_id;
      if (!state.saved && typeof id === "string" && id) {
        // a new campaign must not become the next version of someone else's
        try {
          await get(campaignPath(id), { query, fresh: true });
          state.errors = [{ field: "campaign_id", message: t("builder.id_taken", { id }) }];
          showErrors(true);
          return;
        } catch (error) {
          if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 400)) {
            say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("builder.failed")}: ${error.message}`));
            return;
          }
        }
      }
      let saved;
      try {
        saved = await post("/v1/campaigns", state.def, { query });
      } catch (error) {
        const found = problemsOf(error);
        if (!found) {
          say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("builder.save_failed")}: ${error.message}`));
          return;
        }
        state.errors = found;
        showErrors(true);
        drawCheck({ valid: false, errors: found });
        return;
      }
      const wasNew = !state.saved;
      adopt(saved);
      state.errors = [];
      const where = `#/campaigns/${encodeURIComponent(saved.state.campaign_id)}/edit`;
      if (window.location.hash !== where) history.replaceState(null, "", where); // the same page: nothing redrawn
      drawHeader();
      drawForm();
      jsonArea.value = pretty(state.def);
      drawCheck({ valid: true, errors: [], campaign_id: saved.state.campaign_id, planned_sends: saved.planned_sends, needs_approval: saved.needs_approval, next_runs: saved.next_runs });
      hide(dryBox);
      say(h("p", { class: "notice notice-good", dataset: { saved: String(saved.version.version) } }, wasNew ? t("builder.created", { version: saved.version.version }) : t("builder.saved", { version: saved.version.version })));
    });
  }

  async function dryRun() {
    const saved = state.saved;
    if (!saved) return;
    await busy(buttons.dryRun, async () => {
      say(null);
      dryBox.hidden = false;
      replace(dryBox, h("h3", {}, t("builder.dry_run")), loading());
      try {
        const report = await post(`${campaignPath(saved.id)}/dry-run`, { version: saved.version }, { query });
        drawDryRun(report);
      } catch (error) {
        replace(dryBox, h("h3", {}, t("builder.dry_run")), errorState(error));
      }
    });
  }

  function confirmThen(button, question, confirmText, action) {
    const confirm = h("button", { type: "button", class: "button primary", id: "builder-confirm" }, confirmText);
    const cancel = h("button", { type: "button", class: "button secondary" }, t("common.cancel"));
    confirm.addEventListener("click", async () => {
      await busy(confirm, action);
      replace(confirmArea);
    });
    cancel.addEventListener("click", () => {
      replace(confirmArea);
      button.focus();
    });
    replace(confirmArea, h("div", { class: "confirm", role: "group", "aria-label": confirmText }, h("p", {}, question), confirm, cancel));
    confirm.focus();
  }

  async function start() {
    const saved = state.saved;
    if (!saved) return;
    const question = [
      t("builder.start_question", { version: saved.version, sends: f.int(saved.planned_sends) }),
      dirty() ? ` ${t("builder.start_unsaved")}` : "",
    ].join("");
    confirmThen(buttons.start, question, t("builder.confirm_start"), async () => {
      try {
        const answer = await post(`${campaignPath(saved.id)}/start`, { version: saved.version }, { query });
        ctx.navigate(`#/campaigns/${encodeURIComponent(saved.id)}/runs/${encodeURIComponent(answer.run.run_id)}`);
      } catch (error) {
        say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("builder.start_failed")}: ${error.message}`));
      }
    });
  }

  async function activate() {
    const saved = state.saved;
    if (!saved) return;
    const question = t(state.def.trigger ? "builder.activate_journey_question" : "builder.activate_question", { version: saved.version });
    confirmThen(buttons.activate, question, t("builder.confirm_activate"), async () => {
      try {
        const answer = await post(`${campaignPath(saved.id)}/activate`, undefined, { query });
        saved.status = answer.state.status;
        drawHeader();
        say(h("p", { class: "notice notice-good" }, t("builder.activated", { status: label("status.", answer.state.status) })));
      } catch (error) {
        say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("builder.activate_failed")}: ${error.message}`));
      }
    });
  }

  buttons.validate.addEventListener("click", validate);
  buttons.save?.addEventListener("click", save);
  buttons.dryRun.addEventListener("click", dryRun);
  buttons.start?.addEventListener("click", start);
  buttons.activate?.addEventListener("click", activate);

  // ---- what the API answered

  function hide(el) {
    el.hidden = true;
    replace(el);
  }

  function drawCheck(report) {
    checkBox.hidden = false;
    if (!report.valid) {
      replace(
        checkBox,
        h("h3", {}, t("builder.check")),
        h("p", { class: "builder-verdict builder-verdict-bad", dataset: { valid: "false" } }, t("builder.invalid", { n: (report.errors || []).length })),
      );
      return;
    }
    const runs = report.next_runs || [];
    replace(
      checkBox,
      h("h3", {}, t("builder.check")),
      h("p", { class: "builder-verdict builder-verdict-good", dataset: { valid: "true" } }, t("builder.valid")),
      facts([
        [t("builder.planned_sends"), h("span", { dataset: { metric: "check.planned_sends" } }, f.int(report.planned_sends))],
        [t("builder.approval"), report.needs_approval ? t("builder.needs_approval") : t("builder.no_approval")],
        [t("builder.next_runs"), runs.length ? h("ul", { class: "builder-runs" }, runs.map((r) => h("li", {}, f.dateTime(r)))) : state.def.trigger ? t("builder.runs_trigger") : t("builder.runs_on_start")],
      ]),
    );
  }

  function overlapsBlock(overlaps) {
    if (!overlaps.length) return h("p", { class: "muted small", dataset: { metric: "dry_run.overlaps" } }, t("builder.no_overlaps"));
    return table(
      [
        [t("builder.overlap_campaign"), (o) => h("a", { href: `#/campaigns/${encodeURIComponent(o.campaign_id)}` }, o.campaign_id)],
        [t("builder.overlap_status"), (o) => statusBadge(o.status)],
        [t("builder.overlap_days"), (o) => o.days.map((d) => (d === "every day" ? t("builder.every_day") : day(d))).join(", ")],
      ],
      overlaps,
      { caption: t("builder.overlaps") },
    );
  }

  function byDay(counts, caption, prefix) {
    const days = Object.keys(counts || {}).sort();
    if (!days.length) return empty(t("builder.no_days"));
    return bars(
      days.map((d) => ({ label: day(d), value: counts[d], metric: `${prefix}.${d}`, text: f.int(counts[d]) })),
      { caption },
    );
  }

  function drawDryRun(report) {
    const money = (minor, metric) => h("span", { dataset: { metric } }, f.money(minor, report.currency));
    const head = [
      h("h3", {}, t("builder.dry_run_of", { version: report.version ?? "—" })),
      h("p", { class: "muted small" }, t("builder.dry_run_note")),
    ];
    if (report.entries !== undefined) {
      replace(
        dryBox,
        head,
        h("p", { class: "muted small" }, label("builder.basis_", report.basis)),
        h(
          "div",
          { class: "stat-row" },
          stat(t("builder.entries"), f.int(report.entries), { metric: "dry_run.entries" }),
          stat(t("builder.treatment"), f.int(report.treatment), { metric: "dry_run.treatment" }),
          stat(t("builder.holdout_group"), f.int(report.holdout), { metric: "dry_run.holdout" }),
          stat(t("builder.capped_today"), f.int(report.capped_today), { metric: "dry_run.capped_today" }),
        ),
        facts([
          [t("builder.not_eligible"), h("span", { dataset: { metric: "dry_run.not_eligible" } }, f.int(report.not_eligible))],
          [t("builder.already_in"), h("span", { dataset: { metric: "dry_run.not_entered_already_in" } }, f.int(report.not_entered_already_in))],
          [t("builder.first_send_cost"), money(report.first_send_cost_minor, "dry_run.first_send_cost")],
          [t("builder.cost_at_most"), money(report.cost_at_most_minor, "dry_run.cost_at_most")],
        ]),
        h("h4", { class: "builder-subhead" }, t("builder.entries_by_day")),
        byDay(report.entries_by_day, t("builder.entries_by_day"), "dry_run.entries_by_day"),
        h("h4", { class: "builder-subhead" }, t("builder.overlaps")),
        overlapsBlock(report.overlaps || []),
      );
      return;
    }
    const targeting = report.targeting;
    replace(
      dryBox,
      head,
      h(
        "div",
        { class: "stat-row" },
        stat(t("builder.eligible"), f.int(report.eligible), { metric: "dry_run.eligible" }),
        stat(t("builder.selected"), f.int(report.selected), { metric: "dry_run.selected" }),
        stat(t("builder.treatment"), f.int(report.treatment), { metric: "dry_run.treatment" }),
        stat(t("builder.holdout_group"), f.int(report.holdout), { metric: "dry_run.holdout" }),
      ),
      facts([
        [t("builder.first_send_cost"), money(report.first_send_cost_minor, "dry_run.first_send_cost")],
        [t("builder.follow_up_cost"), money(report.follow_up_cost_at_most_minor, "dry_run.follow_up_cost")],
        [t("builder.total_at_most"), money(report.first_send_cost_minor + report.follow_up_cost_at_most_minor, "dry_run.total_cost")],
        [t("builder.capped_today"), h("span", { dataset: { metric: "dry_run.capped_today" } }, f.int(report.capped_today))],
        [t("builder.unscored"), h("span", { dataset: { metric: "dry_run.unscored" } }, f.int(report.unscored))],
        targeting ? [t("builder.ranking"), `${label("ranking.", targeting.used)} · ${targeting.reason}`] : [t("builder.ranking"), null],
      ]),
      h("h4", { class: "builder-subhead" }, t("builder.sends_by_day")),
      byDay(report.sends_by_day, t("builder.sends_by_day"), "dry_run.sends_by_day"),
      h("h4", { class: "builder-subhead" }, t("builder.overlaps")),
      overlapsBlock(report.overlaps || []),
    );
  }

  // ---- the header and the layout

  function drawHeader() {
    const saved = state.saved;
    const title = saved ? t("builder.title_edit", { name: saved.name }) : t("builder.title_new");
    ctx.title(title);
    replace(
      header,
      pageHeader(title, saved ? null : t("builder.lead")),
      saved
        ? h(
            "p",
            { class: "profile-meta" },
            statusBadge(saved.status),
            code(saved.id),
            h("span", { class: "muted" }, t("builder.version_saved", { version: saved.version })),
            h("a", { href: `#/campaigns/${encodeURIComponent(saved.id)}`, id: "builder-open-campaign" }, t("builder.open_campaign")),
          )
        : null,
      canWrite ? null : h("p", { class: "notice", id: "builder-read-only" }, t("builder.read_only")),
    );
  }

  drawHeader();
  drawForm();
  jsonArea.value = pretty(state.def);
  refreshActions();
  replace(
    holder,
    header,
    h(
      "div",
      { class: "builder" },
      h("section", { class: "card builder-main", "aria-label": t("builder.form") }, h("div", { class: "card-body" }, form, advanced)),
      h(
        "aside",
        { class: "builder-aside", "aria-label": t("builder.actions") },
        h(
          "div",
          { class: "card builder-panel" },
          h(
            "div",
            { class: "card-body" },
            h("div", { class: "builder-actions action-bar" }, buttons.validate, buttons.save, buttons.dryRun, buttons.activate, buttons.start),
            saveState,
            dryHint,
            confirmArea,
            feedback,
            checkBox,
            dryBox,
          ),
        ),
      ),
    ),
  );
}
