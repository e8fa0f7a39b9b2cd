// Audiences: the saved audiences, and the audience builder. The builder edits one definition object (the rule
// language of cdp.tags.rules, as POST /v1/audiences takes it) through a visual condition tree; the JSON view beside
// it is the same object, kept in sync both ways. After every change (debounced) the API estimates the definition as
// it stands: its size, its portrait against all customers and its first members; the API's errors show next to the
// condition or field whose path they name. Save and Snapshot show only to users whose token holds audiences:write
// (the API checks it again). A user of every brand sees every audience and may bind one to a brand (none: every
// brand's customers); a brand's user sees and builds only audiences of its brand's customers (the API binds them);
// a user limited to a dealer or a store holds no whole brand and is refused (403: "not available to your role").

import { ApiError, get, post } from "./api.js";
import { hasScope, orgScope } from "./auth.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { intlLocale, label, t } from "./i18n.js";
import { STAGES } from "./page-home.js";
import { badge, card, code, empty, errorState, facts, fill, loading, pageHeader, stat, table } from "./ui.js";
import { fieldId, getAt, pretty, setAt } from "./paths.js";

const SUBJECTS = ["tag", "attr", "score", "audience", "agg"];
const OPERATORS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "contains", "exists"];
const OPS_BY_TYPE = {
  string: ["eq", "ne", "in", "not_in", "exists"],
  number: ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "exists"],
  bool: ["eq", "ne", "exists"],
  months: ["contains", "exists"],
};
const LIST_OPS = new Set(["in", "not_in"]);
const FIELD_AGGS = new Set(["sum", "min", "max", "last", "most_frequent", "distinct"]);
const NUMERIC_FIELD_AGGS = new Set(["sum", "min", "max"]);
const VALUE_FIELD_AGGS = new Set(["min", "max", "last", "most_frequent"]); // the aggregate has the field's type
export const CATEGORIES = ["basic", "behavior", "preference", "scene", "value", "lifecycle", "timing", "predictive"];
const KINDS = ["static", "dynamic"];
const CONSENT_CHANNELS = ["sms", "email", "push", "wechat"];
const ESTIMATE_DELAY_MS = 400;
const PREVIEW_MEMBERS = 5;
// A definition being built may have no id or name yet: the estimate sizes it under these (never saved so)
const DRAFT_ID = "console_draft";
const DRAFT_NAME = "draft";
const drafts = new Map(); // hash -> unsaved edits kept when the same page is drawn again (a language switch)

function audiencePath(id) {
  return `/v1/audiences/${encodeURIComponent(id)}`;
}

// ---- the definition as data: paths, reading and writing ---------------------------------------------------------

/** "include.all[1]" -> ["include.all", 1]: the list a node sits in and its place (null when it is in none). */
function listSlot(path) {
  const match = /^(.*)\[(\d+)\]$/.exec(path);
  return match ? [match[1], Number(match[2])] : null;
}

/** The path one step up: "include.all[1].gte" -> "include.all[1]" -> "include.all" -> "include" -> "". */
function parentPath(path) {
  const match = /^(.*)(?:\.[^.[\]]+|\[\d+\])$/.exec(path);
  return match ? match[1] : "";
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A stored definition without the empty parts the API writes out for its defaults (the same meaning). */
function tidy(definition) {
  const out = { ...definition };
  for (const [name, value] of Object.entries(out)) if (value === null) delete out[name];
  if (Array.isArray(out.exclude) && !out.exclude.length) delete out.exclude;
  if (out.description === "") delete out.description;
  return out;
}

function blankDefinition() {
  return { id: "", name: "", kind: "static", include: { all: [] } };
}

/** What a node of the condition tree is: a group (all/any), a negation, a comparison, or something else. */
function nodeKind(node) {
  if (!isObject(node)) return "raw";
  if ("all" in node) return Array.isArray(node.all) ? "all" : "raw";
  if ("any" in node) return Array.isArray(node.any) ? "any" : "raw";
  if ("not" in node) return isObject(node.not) ? "not" : "raw";
  return "compare";
}

function subjectOf(node) {
  return SUBJECTS.find((k) => node[k] !== undefined && node[k] !== null) || null;
}

function opOf(node) {
  return OPERATORS.find((k) => node[k] !== undefined && node[k] !== null) || null;
}

function eventsOf(node) {
  if (Array.isArray(node.event)) return node.event;
  return typeof node.event === "string" && node.event ? [node.event] : [];
}

/** "2" as 2; anything that is not a plain number stays the text typed (the API names what is wrong with it). */
function parseNumber(text) {
  const trimmed = String(text).trim();
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(trimmed)) return Number(trimmed);
  return String(text);
}

/** The definition the estimate sizes: the one being built, named for the API when it has no id or name yet. */
function forEstimate(definition) {
  const out = { ...definition };
  if (out.id === "" || out.id === undefined) out.id = DRAFT_ID;
  if (out.name === "" || out.name === undefined) out.name = DRAFT_NAME;
  return out;
}

// ---- the catalog --------------------------------------------------------------------------------------------------

function catalogIndex(catalog, audiences, models) {
  return {
    catalog,
    tags: new Map(catalog.tags.map((x) => [x.name, x])),
    attributes: new Map(catalog.attributes.map((x) => [x.name, x])),
    audiences: audiences || [],
    models: models || [],
  };
}

/** The value type of what a comparison tests (null while its subject is not chosen or unknown). */
function valueType(node, index) {
  const subject = subjectOf(node);
  if (subject === "tag") return index.tags.get(node.tag)?.value_type || null;
  if (subject === "attr") return index.attributes.get(node.attr)?.value_type || null;
  if (subject === "score") return "number";
  if (subject === "audience") return "bool";
  if (subject === "agg") {
    if (node.agg === "usual_months") return "months";
    if (VALUE_FIELD_AGGS.has(node.agg)) return index.catalog.event_fields[node.field] || null;
    return "number";
  }
  return null;
}

/** The values a comparison's subject can take, when the catalog knows them ([] when open). */
function knownValues(node, type, index) {
  if (subjectOf(node) === "tag") {
    const values = index.tags.get(node.tag)?.values || [];
    if (node.tag === "lifecycle") return [...values].sort((a, b) => STAGES.indexOf(a) - STAGES.indexOf(b)); // in stage order
    if (values.length) return values;
  }
  return type === "bool" ? [true, false] : [];
}

function operatorsFor(type, current) {
  const ops = OPS_BY_TYPE[type] || OPERATORS;
  return current && !ops.includes(current) ? [...ops, current] : ops;
}

function defaultOperator(type, known) {
  if (type === "number") return "gte";
  if (type === "months") return "contains";
  if (type === "string" && known.length) return "in";
  return "eq";
}

function blankOperand(op, type) {
  if (LIST_OPS.has(op)) return [];
  if (op === "between") return ["", ""];
  if (op === "exists") return true;
  if (type === "bool" && (op === "eq" || op === "ne")) return true;
  return "";
}

/** The operand carried over to another test where it means something, else a blank one. */
function convertOperand(old, oldOp, newOp, type) {
  if (oldOp === "exists" || old === undefined || old === null) return blankOperand(newOp, type);
  const list = (Array.isArray(old) ? old : [old]).filter((v) => v !== "");
  if (LIST_OPS.has(newOp)) return oldOp === "between" ? [] : list;
  if (newOp === "between") return [list[0] ?? "", list[1] ?? ""];
  if (newOp === "exists" || newOp === "contains") return blankOperand(newOp, type);
  if (type === "bool") return typeof list[0] === "boolean" ? list[0] : true;
  return list[0] ?? "";
}

function clearOperators(node) {
  for (const op of OPERATORS) delete node[op];
}

function blankCompare(subject) {
  if (subject === "agg") return { agg: "count", event: [], gte: "" };
  if (subject === "audience") return { audience: "", eq: true };
  if (subject === "score") return { score: "", gte: "" };
  return { [subject]: "" };
}

function valueText(value) {
  if (value === null || value === undefined) return t("audiences.no_value");
  return String(value);
}

/** A tag's value as the console names it (stages and genders in the console's language). */
export function tagValueLabel(tag, value) {
  if (value === null || value === undefined) return t("audiences.no_value");
  if (tag === "lifecycle") return label("stage.", value);
  if (tag === "gender") return label("gender.", value);
  return String(value);
}

function monthName(month) {
  return new Intl.DateTimeFormat(intlLocale(), { month: "long", timeZone: "UTC" }).format(new Date(Date.UTC(2024, month - 1, 1)));
}

// ---- the list -----------------------------------------------------------------------------------------------------

export async function renderList(ctx) {
  ctx.title(t("nav.audiences"));
  const create = h("a", { class: "button primary", href: "#/audiences/new", id: "new-audience" }, t("audiences.new"));
  const own = orgScope(ctx.session).brand_id;
  ctx.main.append(pageHeader(t("audiences.title"), own ? t("audiences.lead_brand", { brand: own }) : t("audiences.lead"), create));
  const { el, body } = card(t("audiences.all"), { wide: true, id: "audience-list" });
  ctx.main.append(el);
  await fill(body, async () => {
    let list;
    try {
      list = await get("/v1/audiences", { signal: ctx.signal });
    } catch (error) {
      if (error && error.status === 403) create.remove(); // a user limited to a brand: nothing to build either
      throw error;
    }
    const rows = [...list.audiences].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
    if (!rows.length) return empty(t("audiences.none"));
    return table(
      [
        [t("audiences.id"), (a) => h("a", { href: `#/audiences/${encodeURIComponent(a.id)}`, dataset: { audience: a.id } }, code(a.id))],
        [t("audiences.name"), (a) => a.name],
        [t("audiences.kind"), (a) => badge(label("audiences.kind_", a.kind), a.kind === "dynamic" ? "info" : null)],
        [t("audiences.version"), (a) => f.int(a.version), { numeric: true }],
        [t("audiences.owner"), (a) => a.owner],
        [t("audiences.updated"), (a) => f.dateTime(a.updated_at)],
      ],
      rows,
      { caption: t("audiences.all") },
    );
  });
}

// ---- the builder --------------------------------------------------------------------------------------------------

export async function renderBuilder(ctx) {
  const [audienceId] = ctx.params;
  const title = audienceId || t("audiences.title_new");
  ctx.title(title);
  ctx.main.append(h("p", { class: "breadcrumb" }, h("a", { href: "#/audiences" }, `← ${t("audiences.back")}`)));
  const holder = h("div", {}, loading());
  ctx.main.append(holder);
  let catalog;
  let list;
  let stored = null;
  try {
    [catalog, list, stored] = await Promise.all([
      get("/v1/tags", { signal: ctx.signal }),
      get("/v1/audiences", { signal: ctx.signal }),
      audienceId ? get(audiencePath(audienceId), { signal: ctx.signal, fresh: true }) : null,
    ]);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    replace(holder, pageHeader(title, null), errorState(error));
    return;
  }
  const models = await get("/v1/models", { signal: ctx.signal }).catch((error) => {
    if (error && error.name === "AbortError") throw error;
    return null; // score names are then typed without suggestions
  });
  const index = catalogIndex(catalog, list.audiences, models ? models.models.map((m) => m.model_name) : []);
  await builder(ctx, holder, index, stored);
}

async function builder(ctx, holder, index, stored) {
  const canWrite = hasScope(ctx.session, "audiences:write");
  const state = {
    def: stored ? tidy(stored.definition) : blankDefinition(),
    saved: null, // {id, version, json}
    errors: [], // [{field, message}] of the last estimate or save
    jsonProblem: null,
    estimate: null, // the last AudienceEstimate
  };
  const adopt = (answer) => {
    state.def = tidy(answer.definition);
    state.saved = { id: answer.definition.id, version: answer.version, json: pretty(state.def), updated_at: answer.updated_at };
  };
  if (stored) adopt(stored);
  const here = () => (state.saved ? `#/audiences/${encodeURIComponent(state.saved.id)}` : "#/audiences/new");
  const kept = drafts.get(window.location.hash);
  drafts.clear();
  if (kept && kept.version === (state.saved ? state.saved.version : null)) state.def = kept.def;
  const dirty = () => !state.saved || state.saved.json !== pretty(state.def);

  let timer = null;
  let inflight = null; // the AbortController of the estimate under way
  ctx.signal.addEventListener("abort", () => {
    clearTimeout(timer);
    inflight?.abort();
    // the shell draws the page again for the same address (another language): what was built stays
    if (window.location.hash === here() && dirty()) {
      drafts.set(here(), { def: JSON.parse(pretty(state.def)), version: state.saved ? state.saved.version : null });
    }
  });

  // ---- the page's parts
  const header = h("div", { class: "ab-header" });
  const errorsBox = h("div", { class: "ab-errors", id: "audience-errors", tabindex: "-1", "aria-live": "polite" });
  const detailsHolder = h("div", { class: "ab-details" });
  const includeHolder = h("div", { class: "ab-include", id: "audience-include" });
  const excludeHolder = h("div", { class: "ab-exclude", id: "audience-exclude" });
  const jsonArea = h("textarea", {
    id: "audience-json",
    class: "ab-json",
    rows: "28",
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "audience-json-hint audience-json-error",
  });
  const jsonError = h("p", { class: "field-error", id: "audience-json-error", "aria-live": "polite" });
  const liveSize = h("p", { class: "ab-live-size", id: "audience-live-size", role: "status", "aria-live": "polite" });
  const saveState = h("p", { class: "muted small ab-save-state", id: "audience-save-state" });
  const feedback = h("div", { class: "action-feedback", id: "audience-feedback", role: "status", "aria-live": "polite" });
  const estimateBody = h("div", { class: "card-body" });
  const estimateBox = h(
    "section",
    { class: "card card-wide ab-estimate", id: "audience-estimate", "aria-label": t("audiences.estimate"), dataset: { state: "idle" } },
    h("header", { class: "card-header" }, h("h2", {}, t("audiences.estimate")), h("span", { class: "muted small", id: "audience-estimate-status" })),
    estimateBody,
  );
  const estimateStatus = estimateBox.querySelector("#audience-estimate-status");
  const snapshotsBody = h("div", { class: "card-body" });
  const snapshotsBox = h(
    "section",
    { class: "card card-wide ab-snapshots", id: "audience-snapshots", "aria-label": t("audiences.snapshots") },
    h("header", { class: "card-header" }, h("h2", {}, t("audiences.snapshots"))),
    snapshotsBody,
  );
  const buttons = {
    save: canWrite ? h("button", { type: "button", class: "button primary", id: "audience-save" }, t("audiences.save")) : null,
    snapshot: canWrite ? h("button", { type: "button", class: "button secondary", id: "audience-export", "aria-describedby": "audience-export-hint" }, t("audiences.snapshot")) : null,
  };
  const exportHint = h("p", { class: "hint", id: "audience-export-hint" });
  const form = h(
    "form",
    { class: "ab-form", id: "audience-form", novalidate: true, "aria-label": t("audiences.form") },
    detailsHolder,
    h("fieldset", { class: "ab-section", id: "audience-section-include" }, h("legend", {}, t("audiences.include")), h("p", { class: "hint" }, t("audiences.include_hint")), includeHolder),
    h("fieldset", { class: "ab-section", id: "audience-section-exclude" }, h("legend", {}, t("audiences.exclude")), h("p", { class: "hint" }, t("audiences.exclude_hint")), excludeHolder),
  );
  form.addEventListener("submit", (event) => event.preventDefault());

  // ---- the controls: each edits one path of the definition; errors find them by that path
  let registry = new Map(); // path -> {controls, error}

  const register = (path, controls, error) => {
    registry.set(path, { controls: Array.isArray(controls) ? controls : [controls], error });
  };

  const errorFor = (id) => h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });

  /** The definition changed: redraw the tree when its shape did, mirror it in the JSON view, estimate it again. */
  const changed = ({ redraw = false, focus } = {}) => {
    if (redraw) drawEditor(focus);
    if (document.activeElement !== jsonArea) jsonArea.value = pretty(state.def);
    state.jsonProblem = null;
    markJson();
    refreshActions();
    scheduleEstimate();
  };

  /** A labelled control for `path`: `id` defaults to the path's; the control's error element is `<id>-error`. */
  function field(path, labelText, control, { id = fieldId(path), hint, register: also = [], className } = {}) {
    control.id = id;
    if (!control.name) control.name = path;
    const error = errorFor(id);
    control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
    register(path, control, error);
    for (const alias of also) register(alias, control, error);
    return h(
      "div",
      { class: ["field", className] },
      h("label", { for: id }, labelText),
      control,
      hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
      error,
    );
  }

  function select(choices, value, { placeholder } = {}) {
    const el = h(
      "select",
      {},
      placeholder !== undefined ? h("option", { value: "" }, placeholder) : null,
      choices.map((choice) =>
        choice.group
          ? h("optgroup", { label: choice.group }, choice.options.map(([v, text]) => h("option", { value: v }, text)))
          : h("option", { value: choice[0] }, choice[1]),
      ),
    );
    el.value = value === undefined || value === null ? "" : String(value);
    return el;
  }

  function textInput(value, attrs = {}) {
    const el = h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
    el.value = value === undefined || value === null ? "" : String(value);
    return el;
  }

  function iconButton(text, name, action, id) {
    return h("button", { type: "button", class: "button secondary small", id: id || null, "aria-label": name, title: name, on: { click: action } }, text);
  }

  // ---- the audience's fields

  function details() {
    const saved = Boolean(state.saved);
    const id = textInput(state.def.id, saved ? { readonly: true } : {});
    id.addEventListener("input", () => {
      state.def.id = id.value;
      changed();
    });
    const name = textInput(state.def.name, { spellcheck: "true" });
    name.addEventListener("input", () => {
      state.def.name = name.value;
      changed();
    });
    const description = h("textarea", { rows: "2", spellcheck: "true" });
    description.value = typeof state.def.description === "string" ? state.def.description : "";
    description.addEventListener("input", () => {
      if (description.value === "") delete state.def.description;
      else state.def.description = description.value;
      changed();
    });
    const kind = select(KINDS.map((k) => [k, label("audiences.kind_", k)]), state.def.kind, KINDS.includes(state.def.kind) ? {} : { placeholder: "—" });
    kind.addEventListener("change", () => {
      state.def.kind = kind.value;
      changed();
    });
    const consent = select(
      CONSENT_CHANNELS.map((c) => [c, label("channel.", c)]),
      state.def.consent_channel,
      { placeholder: t("audiences.consent_none") },
    );
    consent.addEventListener("change", () => {
      if (consent.value === "") delete state.def.consent_channel;
      else state.def.consent_channel = consent.value;
      changed();
    });
    const own = orgScope(ctx.session).brand_id;
    // a brand's user: the API binds every audience to the brand (shown, not written); else optional
    const brand = textInput(own && !state.def.brand_id ? own : state.def.brand_id, own ? { readonly: true } : { placeholder: t("audiences.brand_every") });
    brand.addEventListener("input", () => {
      if (brand.value === "") delete state.def.brand_id;
      else state.def.brand_id = brand.value;
      changed();
    });
    const owner = textInput(state.def.owner, { placeholder: "marketing" });
    owner.addEventListener("input", () => {
      if (owner.value === "") delete state.def.owner;
      else state.def.owner = owner.value;
      changed();
    });
    return h(
      "fieldset",
      { class: "ab-section", id: "audience-section-details" },
      h("legend", {}, t("audiences.details")),
      h(
        "div",
        { class: "ab-grid" },
        field("id", t("audiences.id"), id, { hint: saved ? t("audiences.id_fixed") : t("audiences.id_hint") }),
        field("name", t("audiences.name"), name),
        field("description", t("audiences.description"), description, { className: "field-wide" }),
        field("brand_id", t("audiences.brand"), brand, { hint: own ? t("audiences.brand_bound", { brand: own }) : t("audiences.brand_hint") }),
        field("kind", t("audiences.kind"), kind, { hint: t("audiences.kind_hint") }),
        field("consent_channel", t("audiences.consent"), consent, { hint: t("audiences.consent_hint") }),
        field("owner", t("audiences.owner"), owner, { hint: t("audiences.owner_hint") }),
      ),
    );
  }

  // ---- the condition tree

  /** Replace the node at `path`. */
  function setNode(path, node) {
    setAt(state.def, path, node);
  }

  /** The control a node's editor starts with (where focus goes when the node is added or its neighbour removed). */
  function firstControlOf(path) {
    const kind = nodeKind(getAt(state.def, path));
    const fid = fieldId(path);
    if (kind === "all" || kind === "any") return `${fid}-mode`;
    if (kind === "not") return `${fid}-unnegate`;
    return `${fid}-subject`;
  }

  /** The list slot a node is removed from: its own, or that of the negation it is the content of (null: none). */
  function removalSlot(path) {
    let at = path;
    while (at && !listSlot(at)) {
      if (!at.endsWith(".not")) return null;
      at = parentPath(at);
    }
    return at ? listSlot(at) : null;
  }

  function removable(path) {
    return removalSlot(path) !== null;
  }

  function removeNode(path) {
    const slot = removalSlot(path);
    if (!slot) return;
    const [listPath, i] = slot;
    const list = getAt(state.def, listPath);
    if (!Array.isArray(list)) return;
    list.splice(i, 1);
    if (listPath === "exclude" && !list.length) delete state.def.exclude;
    const focus = list.length ? firstControlOf(`${listPath}[${Math.min(i, list.length - 1)}]`) : addButtonFor(listPath);
    changed({ redraw: true, focus });
  }

  function addButtonFor(listPath) {
    if (listPath === "exclude") return "audience-add-exclusion";
    return `${fieldId(parentPath(listPath))}-add-condition`;
  }

  function negate(path) {
    const node = getAt(state.def, path);
    setNode(path, { not: node });
    changed({ redraw: true, focus: `${fieldId(path)}-unnegate` });
  }

  function unnegate(path) {
    const node = getAt(state.def, path);
    setNode(path, node.not);
    changed({ redraw: true, focus: `${fieldId(path)}-negate` });
  }

  function nodeActions(path, { negated = false } = {}) {
    const fid = fieldId(path);
    return h(
      "div",
      { class: "ab-node-actions" },
      negated ? null : iconButton(t("audiences.negate"), t("audiences.negate_label"), () => negate(path), `${fid}-negate`),
      removable(path) ? iconButton(t("audiences.remove"), t("audiences.remove_label"), () => removeNode(path), `${fid}-remove`) : null,
    );
  }

  function nodeEditor(path, depth) {
    const node = getAt(state.def, path);
    const kind = nodeKind(node);
    if (kind === "all" || kind === "any") return groupEditor(path, node, kind, depth);
    if (kind === "not") return notEditor(path, node, depth);
    if (kind === "compare") return compareEditor(path, node);
    return rawEditor(path, node);
  }

  function groupEditor(path, node, kind, depth) {
    const fid = fieldId(path);
    const children = node[kind];
    const mode = select(
      [
        ["all", t("audiences.all_of")],
        ["any", t("audiences.any_of")],
      ],
      kind,
    );
    mode.addEventListener("change", () => {
      const now = getAt(state.def, path);
      const other = mode.value === "all" ? "any" : "all";
      const rebuilt = {};
      for (const [key, value] of Object.entries(now)) rebuilt[key === other ? mode.value : key] = value;
      setNode(path, rebuilt);
      changed({ redraw: true, focus: `${fid}-mode` });
    });
    const add = (child) => {
      const list = getAt(state.def, `${path}.${kind}`);
      list.push(child);
      changed({ redraw: true, focus: firstControlOf(`${path}.${kind}[${list.length - 1}]`) });
    };
    const error = errorFor(fid);
    mode.id = `${fid}-mode`;
    mode.name = `${path}.mode`;
    mode.setAttribute("aria-describedby", `${fid}-error`);
    register(path, mode, error);
    register(`${path}.${kind}`, mode, error);
    return h(
      "div",
      { class: ["ab-node", "ab-group", `ab-depth-${Math.min(depth, 4)}`], role: "group", "aria-labelledby": `${fid}-title`, dataset: { path, node: kind } },
      h(
        "div",
        { class: "ab-node-head" },
        h("label", { for: mode.id, id: `${fid}-title`, class: "ab-node-title" }, t("audiences.group")),
        mode,
        nodeActions(path),
      ),
      error,
      children.length
        ? h("ol", { class: "ab-children" }, children.map((_, i) => h("li", { class: "ab-child" }, nodeEditor(`${path}.${kind}[${i}]`, depth + 1))))
        : h("p", { class: "hint ab-empty" }, t("audiences.group_empty")),
      h(
        "div",
        { class: "ab-add" },
        h("button", { type: "button", class: "button secondary small", id: `${fid}-add-condition`, on: { click: () => add({ tag: "" }) } }, t("audiences.add_condition")),
        h("button", { type: "button", class: "button secondary small", id: `${fid}-add-group`, on: { click: () => add({ all: [{ tag: "" }] }) } }, t("audiences.add_group")),
      ),
    );
  }

  function notEditor(path, node, depth) {
    const fid = fieldId(path);
    const error = errorFor(fid);
    const unwrap = iconButton(t("audiences.unnegate"), t("audiences.unnegate_label"), () => unnegate(path), `${fid}-unnegate`);
    register(path, unwrap, error);
    return h(
      "div",
      { class: ["ab-node", "ab-not"], role: "group", "aria-labelledby": `${fid}-title`, dataset: { path, node: "not" } },
      h("div", { class: "ab-node-head" }, h("span", { class: "ab-node-title", id: `${fid}-title` }, t("audiences.not")), h("div", { class: "ab-node-actions" }, unwrap, removable(path) ? iconButton(t("audiences.remove"), t("audiences.remove_label"), () => removeNode(path), `${fid}-remove`) : null)),
      error,
      nodeEditor(`${path}.not`, depth + 1),
    );
  }

  function rawEditor(path, node) {
    const fid = fieldId(path);
    const error = errorFor(fid);
    const shown = h("pre", { class: "ab-raw", id: `${fid}-subject`, tabindex: "0", "aria-describedby": `${fid}-error` }, JSON.stringify(node));
    register(path, shown, error);
    return h(
      "div",
      { class: ["ab-node", "ab-condition"], dataset: { path, node: "raw" } },
      h("p", { class: "hint" }, t("audiences.json_only")),
      shown,
      error,
      nodeActions(path, { negated: true }),
    );
  }

  function compareEditor(path, node) {
    const fid = fieldId(path);
    const subject = subjectOf(node);
    const type = valueType(node, index);
    const known = knownValues(node, type, index);
    const op = opOf(node);
    const error = errorFor(fid);

    const subjectSelect = select(
      SUBJECTS.map((s) => [s, label("audiences.subject_", s)]),
      subject,
      subject ? {} : { placeholder: "—" },
    );
    subjectSelect.addEventListener("change", () => {
      setNode(path, blankCompare(subjectSelect.value || "tag"));
      changed({ redraw: true, focus: `${fid}-subject` });
    });
    // the condition's own errors (the shape: no test, two subjects, ...) show below it; its subject is marked
    subjectSelect.id = `${fid}-subject`;
    subjectSelect.name = `${path}.subject`;
    subjectSelect.setAttribute("aria-describedby", `${fid}-error`);
    register(path, subjectSelect, error);
    const parts = [h("div", { class: "field" }, h("label", { for: subjectSelect.id }, t("audiences.subject")), subjectSelect)];
    if (subject) parts.push(nameControl(path, node, subject));
    if (subject === "agg") parts.push(...aggregateControls(path, node));

    const opSelect = select(
      operatorsFor(type, op).map((o) => [o, label("audiences.op_", o)]),
      op,
      op ? {} : { placeholder: "—" },
    );
    opSelect.addEventListener("change", () => {
      const now = getAt(state.def, path);
      const before = opOf(now);
      const old = before ? now[before] : undefined;
      clearOperators(now);
      if (opSelect.value) now[opSelect.value] = convertOperand(old, before, opSelect.value, valueType(now, index));
      changed({ redraw: true, focus: `${fid}-op` });
    });
    parts.push(h("div", { class: "field" }, h("label", { for: `${fid}-op` }, t("audiences.test")), opSelect));
    opSelect.id = `${fid}-op`;
    opSelect.name = `${path}.op`;
    if (op) parts.push(valueControl(path, node, op, type, known));

    return h(
      "div",
      { class: ["ab-node", "ab-condition"], dataset: { path, node: "compare", subject: subject || "" } },
      h("div", { class: "ab-condition-row" }, parts, nodeActions(path)),
      error,
    );
  }

  function nameControl(path, node, subject) {
    const namePath = `${path}.${subject}`;
    const value = node[subject];
    const onPicked = (picked) => {
      const now = getAt(state.def, path);
      now[subject] = picked;
      if (subject === "tag" || subject === "attr") {
        const type = valueType(now, index);
        const known = knownValues(now, type, index);
        const before = opOf(now);
        const op = before && (OPS_BY_TYPE[type] || OPERATORS).includes(before) ? before : defaultOperator(type, known);
        clearOperators(now);
        now[op] = blankOperand(op, type);
      }
      changed({ redraw: true, focus: fieldId(namePath) });
    };
    if (subject === "tag") {
      const groups = CATEGORIES.map((category) => ({
        group: label("tags.category_", category),
        options: index.catalog.tags.filter((x) => x.category === category).map((x) => [x.name, x.name]),
      })).filter((g) => g.options.length);
      const others = index.catalog.tags.filter((x) => !CATEGORIES.includes(x.category)).map((x) => [x.name, x.name]);
      if (others.length) groups.push({ group: "—", options: others });
      if (value && !index.tags.has(value)) groups.push({ group: t("audiences.not_in_catalog"), options: [[value, value]] });
      const el = select(groups, value, { placeholder: t("audiences.choose_tag") });
      el.addEventListener("change", () => onPicked(el.value));
      const entry = index.tags.get(value);
      return field(namePath, t("audiences.subject_tag"), el, { hint: entry ? entry.description : null });
    }
    if (subject === "attr") {
      const choices = index.catalog.attributes.map((a) => [a.name, a.name]);
      if (value && !index.attributes.has(value)) choices.push([value, value]);
      const el = select(choices, value, { placeholder: t("audiences.choose_attribute") });
      el.addEventListener("change", () => onPicked(el.value));
      const entry = index.attributes.get(value);
      return field(namePath, t("audiences.subject_attr"), el, { hint: entry ? entry.description : null });
    }
    if (subject === "audience") {
      const own = state.def.id;
      const choices = index.audiences.filter((a) => a.id !== own).map((a) => [a.id, `${a.name} (${a.id}) · ${label("audiences.kind_", a.kind)}`]);
      if (value && !choices.some(([id]) => id === value)) choices.push([value, String(value)]);
      const el = select(choices, value, { placeholder: t("audiences.choose_audience") });
      el.addEventListener("change", () => onPicked(el.value));
      return field(namePath, t("audiences.subject_audience"), el, { hint: t("audiences.audience_hint") });
    }
    if (subject === "score") {
      const listId = `${fieldId(namePath)}-models`;
      const el = textInput(value, { list: listId, placeholder: "churn" });
      el.addEventListener("input", () => {
        getAt(state.def, path).score = el.value;
        changed();
      });
      const wrapper = field(namePath, t("audiences.subject_score"), el, { hint: t("audiences.score_hint") });
      wrapper.append(h("datalist", { id: listId }, index.models.map((m) => h("option", { value: m }))));
      return wrapper;
    }
    // agg: what to compute
    const choices = index.catalog.aggregates.map((a) => [a, label("audiences.agg_", a)]);
    if (value && !index.catalog.aggregates.includes(value)) choices.push([value, String(value)]);
    const el = select(choices, value, {});
    el.addEventListener("change", () => {
      const now = getAt(state.def, path);
      now.agg = el.value;
      if (FIELD_AGGS.has(el.value)) {
        const fields = Object.entries(index.catalog.event_fields).filter(([, type]) => !NUMERIC_FIELD_AGGS.has(el.value) || type === "number");
        if (!fields.some(([name]) => name === now.field)) now.field = fields.length ? fields[0][0] : "";
      } else delete now.field;
      if (el.value !== "usual_months") delete now.min_years;
      const type = valueType(now, index);
      const before = opOf(now);
      if (!before || !(OPS_BY_TYPE[type] || OPERATORS).includes(before)) {
        clearOperators(now);
        const op = defaultOperator(type, []);
        now[op] = blankOperand(op, type);
      }
      changed({ redraw: true, focus: fieldId(namePath) });
    });
    return field(namePath, t("audiences.subject_agg"), el);
  }

  function aggregateControls(path, node) {
    const out = [];
    // the event types: chosen ones as removable chips, and a picker to add one
    const eventsPath = `${path}.event`;
    const eid = fieldId(eventsPath);
    const chosen = eventsOf(node);
    const adder = select(
      index.catalog.event_types.filter((e) => !chosen.includes(e)).map((e) => [e, `${label("event.", e)} (${e})`]),
      "",
      { placeholder: chosen.length ? t("audiences.add_event") : t("audiences.choose_event") },
    );
    adder.addEventListener("change", () => {
      if (!adder.value) return;
      const now = getAt(state.def, path);
      now.event = [...eventsOf(now), adder.value];
      changed({ redraw: true, focus: eid });
    });
    const chips = h(
      "ul",
      { class: "chips ab-events", "aria-label": t("audiences.events") },
      chosen.map((e, i) =>
        h(
          "li",
          { class: "ab-chip", dataset: { event: e } },
          h("span", {}, `${label("event.", e)} (${e})`),
          h(
            "button",
            {
              type: "button",
              class: "ab-chip-remove",
              id: `${eid}-remove-${i}`,
              "aria-label": t("audiences.remove_event", { event: e }),
              title: t("audiences.remove_event", { event: e }),
              on: {
                click: () => {
                  const now = getAt(state.def, path);
                  now.event = eventsOf(now).filter((x) => x !== e);
                  changed({ redraw: true, focus: eid });
                },
              },
            },
            "×",
          ),
        ),
      ),
    );
    const eventField = field(eventsPath, t("audiences.events"), adder, { register: chosen.map((_, i) => `${eventsPath}[${i}]`) });
    eventField.insertBefore(chips, adder);
    out.push(eventField);

    if (FIELD_AGGS.has(node.agg) || node.field !== undefined) {
      const fieldPath = `${path}.field`;
      const choices = Object.entries(index.catalog.event_fields)
        .filter(([, type]) => !NUMERIC_FIELD_AGGS.has(node.agg) || type === "number")
        .map(([name]) => [name, name]);
      if (node.field && !choices.some(([name]) => name === node.field)) choices.push([node.field, String(node.field)]);
      const el = select(choices, node.field, { placeholder: "—" });
      el.addEventListener("change", () => {
        const now = getAt(state.def, path);
        if (el.value === "") delete now.field;
        else now.field = el.value;
        const type = valueType(now, index);
        const before = opOf(now);
        if (before && !(OPS_BY_TYPE[type] || OPERATORS).includes(before)) {
          clearOperators(now);
          const op = defaultOperator(type, []);
          now[op] = blankOperand(op, type);
        }
        changed({ redraw: true, focus: fieldId(fieldPath) });
      });
      out.push(field(fieldPath, t("audiences.event_field"), el));
    }

    const daysPath = `${path}.within_days`;
    const days = textInput(node.within_days, { inputmode: "numeric", class: "ab-short", placeholder: t("audiences.any_time") });
    days.addEventListener("input", () => {
      const now = getAt(state.def, path);
      if (days.value.trim() === "") delete now.within_days;
      else now.within_days = parseNumber(days.value);
      changed();
    });
    out.push(field(daysPath, t("audiences.within_days"), days));

    if (node.agg === "usual_months" || node.min_years !== undefined) {
      const yearsPath = `${path}.min_years`;
      const years = textInput(node.min_years, { inputmode: "numeric", class: "ab-short" });
      years.addEventListener("input", () => {
        const now = getAt(state.def, path);
        if (years.value.trim() === "") delete now.min_years;
        else now.min_years = parseNumber(years.value);
        changed();
      });
      out.push(field(yearsPath, t("audiences.min_years"), years));
    }
    out.push(whereControls(path, node));
    return out;
  }

  function whereControls(path, node) {
    const wherePath = `${path}.where`;
    const wid = fieldId(wherePath);
    const where = isObject(node.where) ? node.where : {};
    const fields = index.catalog.event_fields;
    const error = errorFor(wid);
    const rows = Object.entries(where).map(([key, value], i) => {
      const rowId = `${wid}-${i}`;
      const keySelect = select(
        Object.keys(fields).filter((name) => name === key || !(name in where)).map((name) => [name, name]),
        key,
      );
      if (!(key in fields)) keySelect.append(h("option", { value: key }, key));
      keySelect.value = key;
      keySelect.id = `${rowId}-field`;
      keySelect.name = `${wherePath}.${key}.field`;
      keySelect.addEventListener("change", () => {
        const now = getAt(state.def, path);
        const rebuilt = {};
        for (const [k, v] of Object.entries(now.where)) rebuilt[k === key ? keySelect.value : k] = v;
        now.where = rebuilt;
        changed({ redraw: true, focus: keySelect.id });
      });
      const shown = Array.isArray(value) ? value.join(", ") : value;
      const valueInput = textInput(shown, { inputmode: fields[key] === "number" ? "decimal" : null });
      const valueId = fieldId(`${wherePath}.${key}`);
      valueInput.id = valueId;
      valueInput.name = `${wherePath}.${key}`;
      const valueError = errorFor(valueId);
      valueInput.setAttribute("aria-describedby", `${valueId}-error ${wid}-hint`);
      register(`${wherePath}.${key}`, [valueInput], valueError);
      valueInput.addEventListener("input", () => {
        const now = getAt(state.def, path);
        const items = valueInput.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
        const typed = items.map((v) => (fields[key] === "number" ? parseNumber(v) : v));
        now.where[key] = valueInput.value.includes(",") ? typed : (typed[0] ?? "");
        changed();
      });
      return h(
        "li",
        { class: "ab-where-row", dataset: { field: key } },
        h("div", { class: "field" }, h("label", { for: keySelect.id }, t("audiences.where_field")), keySelect),
        h("div", { class: "field" }, h("label", { for: valueId }, t("audiences.where_value")), valueInput, valueError),
        iconButton(t("audiences.remove"), t("audiences.remove_filter", { field: key }), () => {
          const now = getAt(state.def, path);
          delete now.where[key];
          if (!Object.keys(now.where).length) delete now.where;
          changed({ redraw: true, focus: `${wid}-add` });
        }, `${rowId}-remove`),
      );
    });
    const addButton = h(
      "button",
      {
        type: "button",
        class: "button secondary small",
        id: `${wid}-add`,
        "aria-describedby": `${wid}-error`,
        on: {
          click: () => {
            const now = getAt(state.def, path);
            const free = Object.keys(fields).find((name) => !(isObject(now.where) && name in now.where));
            if (!free) return;
            now.where = { ...(isObject(now.where) ? now.where : {}), [free]: "" };
            changed({ redraw: true, focus: `${wid}-${Object.keys(now.where).length - 1}-field` });
          },
        },
      },
      t("audiences.add_filter"),
    );
    register(wherePath, addButton, error);
    return h(
      "div",
      { class: "ab-where field-wide", role: "group", "aria-labelledby": `${wid}-title` },
      h("span", { class: "ab-where-title", id: `${wid}-title` }, t("audiences.where")),
      h("p", { class: "hint", id: `${wid}-hint` }, t("audiences.where_hint")),
      rows.length ? h("ul", { class: "ab-where-rows" }, rows) : null,
      addButton,
      error,
    );
  }

  function valueControl(path, node, op, type, known) {
    const valuePath = `${path}.${op}`;
    const id = fieldId(valuePath);
    const operand = node[op];
    const write = (value) => {
      getAt(state.def, path)[op] = value;
    };
    if (op === "exists") {
      const el = select(
        [
          ["true", t("audiences.exists_true")],
          ["false", t("audiences.exists_false")],
        ],
        operand === false ? "false" : "true",
      );
      el.addEventListener("change", () => {
        write(el.value === "true");
        changed();
      });
      return field(valuePath, t("audiences.value"), el);
    }
    if (op === "contains") {
      const months = Array.from({ length: 12 }, (_, i) => [String(i + 1), monthName(i + 1)]);
      if (operand !== "" && operand !== undefined && !months.some(([v]) => v === String(operand))) months.push([String(operand), String(operand)]);
      const el = select(months, operand, { placeholder: t("audiences.choose_month") });
      el.addEventListener("change", () => {
        write(el.value === "" ? "" : parseNumber(el.value));
        changed();
      });
      return field(valuePath, t("audiences.month"), el);
    }
    if (op === "between") {
      const pair = Array.isArray(operand) ? operand : [operand, ""];
      const inputs = [0, 1].map((i) => {
        const el = textInput(pair[i], { inputmode: "decimal", class: "ab-short" });
        el.addEventListener("input", () => {
          const now = getAt(state.def, path);
          const current = Array.isArray(now.between) ? [...now.between] : ["", ""];
          current[i] = parseNumber(el.value);
          now.between = current;
          changed();
        });
        return field(`${valuePath}[${i}]`, i === 0 ? t("audiences.low") : t("audiences.high"), el);
      });
      const error = errorFor(id);
      register(valuePath, [...inputs.map((w) => w.querySelector("input"))], error);
      return h("div", { class: "ab-between", role: "group", "aria-label": t("audiences.between_label"), id }, inputs, error);
    }
    if (LIST_OPS.has(op) && known.length) {
      const chosen = Array.isArray(operand) ? operand : [];
      const values = [...known, ...chosen.filter((v) => !known.includes(v))];
      const error = errorFor(id);
      const boxes = values.map((v, i) => {
        const box = h("input", { type: "checkbox", id: `${id}-${i}`, name: valuePath, value: String(v), "aria-describedby": `${id}-error` });
        box.checked = chosen.includes(v);
        box.addEventListener("change", () => {
          const now = getAt(state.def, path);
          const kept = (Array.isArray(now[op]) ? now[op] : []).filter((x) => x !== v);
          now[op] = box.checked ? [...kept, v] : kept; // in the order they were picked
          changed();
        });
        return box;
      });
      register(valuePath, boxes, error);
      boxes.forEach((box, i) => register(`${valuePath}[${i}]`, box, error));
      return h(
        "fieldset",
        { class: "ab-values", id, dataset: { values: op } },
        h("legend", {}, label("audiences.op_", op)),
        h("div", { class: "ab-value-boxes" }, boxes.map((box, i) => h("label", { class: "ab-check", for: box.id }, box, h("span", {}, tagValueLabel(node.tag, values[i]))))),
        error,
      );
    }
    if (LIST_OPS.has(op)) {
      const shown = Array.isArray(operand) ? operand.join(", ") : operand;
      const el = textInput(shown, { inputmode: type === "number" ? "decimal" : null });
      el.addEventListener("input", () => {
        const items = el.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
        write(items.map((v) => (type === "number" ? parseNumber(v) : v)));
        changed();
      });
      return field(valuePath, t("audiences.values"), el, { hint: t("audiences.values_hint"), register: (Array.isArray(operand) ? operand : []).map((_, i) => `${valuePath}[${i}]`) });
    }
    if (known.length) {
      const options = known.map((v, i) => [String(i), tagValueLabel(node.tag, v)]);
      let selected = known.findIndex((v) => v === operand);
      if (selected < 0 && operand !== "" && operand !== undefined) {
        options.push([String(known.length), valueText(operand)]);
        selected = known.length;
      }
      const el = select(options, selected < 0 ? "" : String(selected), type === "bool" ? {} : { placeholder: t("audiences.choose_value") });
      el.addEventListener("change", () => {
        write(el.value === "" ? "" : Number(el.value) < known.length ? known[Number(el.value)] : operand);
        changed();
      });
      return field(valuePath, t("audiences.value"), el);
    }
    const el = textInput(operand, { inputmode: type === "number" ? "decimal" : null, class: type === "number" ? "ab-short" : null });
    el.addEventListener("input", () => {
      write(type === "number" ? parseNumber(el.value) : el.value);
      changed();
    });
    return field(valuePath, t("audiences.value"), el);
  }

  // ---- drawing the form

  function includeEditor() {
    const node = state.def.include;
    const kind = nodeKind(node);
    const wrap = kind === "compare" || kind === "raw" || kind === "not";
    return [
      node === undefined
        ? h("button", { type: "button", class: "button secondary small", id: "audience-start-include", on: { click: () => { state.def.include = { all: [] }; changed({ redraw: true, focus: `${fieldId("include")}-add-condition` }); } } }, t("audiences.add_group"))
        : nodeEditor("include", 0),
      wrap && node !== undefined
        ? h("button", { type: "button", class: "button secondary small ab-wrap", id: "audience-group-include", on: { click: () => { state.def.include = { all: [state.def.include] }; changed({ redraw: true, focus: `${fieldId("include")}-mode` }); } } }, t("audiences.make_group"))
        : null,
    ];
  }

  function excludeEditor() {
    const list = Array.isArray(state.def.exclude) ? state.def.exclude : [];
    const error = errorFor(fieldId("exclude"));
    const add = (node) => {
      if (!Array.isArray(state.def.exclude)) state.def.exclude = [];
      state.def.exclude.push(node);
      changed({ redraw: true, focus: firstControlOf(`exclude[${state.def.exclude.length - 1}]`) });
    };
    const addCondition = h("button", { type: "button", class: "button secondary small", id: "audience-add-exclusion", "aria-describedby": `${fieldId("exclude")}-error`, on: { click: () => add({ tag: "" }) } }, t("audiences.add_exclusion"));
    register("exclude", addCondition, error);
    return [
      list.length
        ? h("ol", { class: "ab-children ab-exclusions" }, list.map((_, i) => h("li", { class: "ab-child" }, nodeEditor(`exclude[${i}]`, 1))))
        : h("p", { class: "hint ab-empty", id: "audience-no-exclusions" }, t("audiences.no_exclusions")),
      error,
      h(
        "div",
        { class: "ab-add" },
        addCondition,
        h("button", { type: "button", class: "button secondary small", id: "audience-add-exclusion-group", on: { click: () => add({ any: [{ tag: "" }] }) } }, t("audiences.add_exclusion_group")),
      ),
    ];
  }

  function drawEditor(focusId) {
    const active = document.activeElement;
    const focused = focusId || (active && form.contains(active) ? active.id : null);
    registry = new Map();
    replace(detailsHolder, details());
    replace(includeHolder, includeEditor());
    replace(excludeHolder, excludeEditor());
    showErrors(false);
    if (focused) document.getElementById(focused)?.focus();
  }

  // ---- errors next to their controls

  /** The registered control for an error's path: the path itself, else the nearest path above it. */
  function entryFor(path) {
    for (let at = path; at; at = parentPath(at)) {
      const entry = registry.get(at);
      if (entry) return entry;
    }
    return null;
  }

  function showErrors(moveFocus) {
    for (const { controls, error } of registry.values()) {
      error.textContent = "";
      for (const control of controls) control.removeAttribute("aria-invalid");
    }
    const unmatched = [];
    const invalid = [];
    for (const problem of state.errors) {
      const entry = entryFor(String(problem.field || ""));
      if (!entry) {
        unmatched.push(problem);
        continue;
      }
      const said = entry.error.textContent ? entry.error.textContent.split(" · ") : [];
      if (!said.includes(problem.message)) entry.error.textContent = [...said, problem.message].join(" · ");
      for (const control of entry.controls) control.setAttribute("aria-invalid", "true");
      invalid.push(entry.controls[0]);
    }
    replace(
      errorsBox,
      state.errors.length
        ? h(
            "div",
            { class: "notice notice-danger", dataset: { errors: String(state.errors.length) } },
            h("p", { class: "ab-errors-title" }, t("audiences.errors_count", { n: state.errors.length })),
            unmatched.length
              ? [
                  h("p", {}, t("audiences.errors_other")),
                  h("ul", { class: "ab-error-list" }, unmatched.map((e) => h("li", { dataset: { field: e.field } }, code(e.field), " ", h("span", {}, e.message)))),
                ]
              : null,
          )
        : null,
    );
    if (!moveFocus) return;
    invalid.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    if (invalid.length) invalid[0].focus();
    else if (state.errors.length) errorsBox.focus();
  }

  function problemsOf(error) {
    if (error instanceof ApiError && error.errors && error.errors.length) return error.errors;
    if (error instanceof ApiError && (error.status === 400 || error.status === 422) && error.field) return [{ field: error.field, message: error.message }];
    return null;
  }

  // ---- the JSON view

  function markJson() {
    jsonError.textContent = state.jsonProblem || "";
    if (state.jsonProblem) jsonArea.setAttribute("aria-invalid", "true");
    else jsonArea.removeAttribute("aria-invalid");
  }

  jsonArea.addEventListener("input", () => {
    let parsed;
    state.jsonProblem = null;
    try {
      parsed = JSON.parse(jsonArea.value);
    } catch (error) {
      state.jsonProblem = `${t("audiences.json_invalid")}: ${error.message}`;
    }
    if (!state.jsonProblem && !isObject(parsed)) state.jsonProblem = t("audiences.json_not_object");
    if (state.jsonProblem) {
      markJson();
      clearTimeout(timer);
      inflight?.abort();
      inflight = null;
      estimateBox.dataset.state = "json";
      estimateStatus.textContent = t("audiences.estimate_json");
      refreshActions();
      return;
    }
    state.def = parsed;
    state.jsonProblem = null;
    markJson();
    drawEditor();
    refreshActions();
    scheduleEstimate();
  });

  /** Nothing is sent while the JSON view holds text that is not a definition. */
  function jsonReady() {
    if (!state.jsonProblem) return true;
    jsonArea.focus();
    return false;
  }

  // ---- the live estimate

  function scheduleEstimate() {
    clearTimeout(timer);
    inflight?.abort();
    inflight = null;
    if (state.jsonProblem) return;
    estimateBox.dataset.state = "pending";
    estimateBody.classList.add("ab-stale");
    estimateStatus.textContent = t("audiences.estimating");
    timer = setTimeout(runEstimate, ESTIMATE_DELAY_MS);
  }

  async function runEstimate() {
    clearTimeout(timer);
    const controller = new AbortController();
    inflight = controller;
    estimateBox.dataset.state = "pending";
    estimateStatus.textContent = t("audiences.estimating");
    const body = { definition: forEstimate(state.def), preview: PREVIEW_MEMBERS };
    try {
      const answer = await post("/v1/audiences/estimate", body, { signal: controller.signal });
      if (controller !== inflight) return;
      state.estimate = answer;
      state.errors = [];
      showErrors(false);
      drawEstimate(answer);
      estimateBox.dataset.state = "ready";
    } catch (error) {
      if ((error && error.name === "AbortError") || controller !== inflight) return;
      const problems = error instanceof ApiError && error.status === 422 ? problemsOf(error) : null;
      state.estimate = null;
      if (problems) {
        state.errors = problems;
        showErrors(false);
        replace(estimateBody, h("p", { class: "state state-empty", dataset: { state: "invalid" } }, t("audiences.estimate_invalid", { n: problems.length })));
        replace(liveSize, t("audiences.live_size_invalid"));
        estimateBox.dataset.state = "invalid";
      } else {
        replace(estimateBody, errorState(error, () => runEstimate()));
        replace(liveSize);
        estimateBox.dataset.state = "error";
      }
    } finally {
      if (controller === inflight) {
        inflight = null;
        estimateBody.classList.remove("ab-stale");
        estimateStatus.textContent = "";
      }
    }
  }

  function sizeText(size) {
    return size.exact ? t("audiences.size_exact", { n: f.int(size.estimate) }) : t("audiences.size_interval", { n: f.int(size.estimate), low: f.int(size.low), high: f.int(size.high) });
  }

  function drawEstimate(answer) {
    const size = answer.size;
    const report = answer.report;
    replace(liveSize, h("span", { class: "muted" }, t("audiences.live_size")), " ", h("strong", { dataset: { metric: "live.size" } }, f.int(size.estimate)), " ", size.exact ? badge(t("audiences.exact"), "good") : h("span", { class: "muted" }, t("audiences.interval", { low: f.int(size.low), high: f.int(size.high) })));
    const reads = report.reads || {};
    const readParts = [
      ["tags", reads.tags],
      ["attributes", reads.attributes],
      ["scores", reads.scores],
      ["audiences", reads.audiences],
      ["events", reads.events],
    ].filter(([, names]) => names && names.length);
    replace(
      estimateBody,
      h(
        "div",
        { class: "stat-row" },
        stat(t("audiences.size"), f.int(size.estimate), {
          metric: "estimate.size",
          note: size.exact ? t("audiences.exact_note") : t("audiences.interval_note", { low: f.int(size.low), high: f.int(size.high) }),
        }),
        stat(t("audiences.profiles_scanned"), f.int(size.profiles_scanned), { metric: "estimate.profiles_scanned", note: t("audiences.population", { n: f.int(size.population_estimate) }) }),
        stat(t("audiences.segments"), `${f.int(size.segments_scanned)} / ${f.int(size.segments_total)}`, { metric: "estimate.segments", small: true }),
        stat(t("audiences.method"), size.method, { metric: "estimate.method", small: true }),
      ),
      h("span", { hidden: true, dataset: { metric: "estimate.low" } }, String(size.low)),
      h("span", { hidden: true, dataset: { metric: "estimate.high" } }, String(size.high)),
      h("span", { hidden: true, dataset: { metric: "estimate.exact" } }, String(size.exact)),
      facts([
        [t("audiences.freshness"), report.freshness ? badge(label("tags.freshness_", report.freshness), report.freshness === "real_time" ? "good" : "warn") : null],
        [t("audiences.reads"), readParts.length ? h("ul", { class: "ab-reads" }, readParts.map(([kind, names]) => h("li", {}, h("span", { class: "muted" }, label("audiences.reads_", kind)), " ", names.map((n, i) => [i ? ", " : "", code(n)])))) : "—"],
        [t("audiences.saved_version"), answer.saved_version ? t("audiences.version_n", { version: answer.saved_version }) : t("audiences.not_saved")],
        [t("audiences.notes"), report.notes && report.notes.length ? h("ul", { class: "ab-notes" }, report.notes.map((n) => h("li", {}, n))) : null],
      ]),
      h("h3", { class: "subhead" }, t("audiences.portrait")),
      h("p", { class: "hint" }, t("audiences.portrait_hint", { members: f.int(answer.portrait.members), customers: f.int(answer.portrait.customers) })),
      portrait(answer.portrait),
      h("h3", { class: "subhead" }, t("audiences.preview")),
      previewTable(answer.preview),
    );
  }

  function portrait(data) {
    if (!data.dimensions.length) return empty(t("audiences.portrait_none"));
    return h("div", { class: "ab-portrait", id: "audience-portrait" }, data.dimensions.map((d) => dimensionChart(d)));
  }

  function dimensionChart(dimension) {
    const entry = index.tags.get(dimension.tag);
    const top = Math.max(0.0001, ...dimension.values.flatMap((v) => [v.members_share, v.customers_share]));
    const named = (value) => {
      if (value === "other" && !(entry && entry.values.includes("other"))) return t("audiences.other_values");
      return tagValueLabel(dimension.tag, value);
    };
    const bar = (share, tone) => {
      const fillEl = h("span", { class: ["bar-fill", tone && `tone-${tone}`] });
      fillEl.style.width = `${((Math.max(0, share) / top) * 100).toFixed(2)}%`;
      return h("span", { class: "bar-track", "aria-hidden": "true" }, fillEl);
    };
    const key = (v) => (v === null ? "null" : String(v));
    return h(
      "section",
      { class: "ab-dimension", dataset: { dimension: dimension.tag }, "aria-labelledby": `portrait-${dimension.tag}` },
      h("h4", { id: `portrait-${dimension.tag}` }, code(dimension.tag), entry ? h("span", { class: "muted small ab-dimension-note" }, entry.description) : null),
      h("p", { class: "ab-legend", "aria-hidden": "true" }, h("span", { class: "ab-key ab-key-members" }), t("audiences.members"), h("span", { class: "ab-key ab-key-customers" }), t("audiences.customers")),
      h(
        "div",
        { class: "ab-pairs", role: "list", "aria-label": t("audiences.portrait_of", { tag: dimension.tag }) },
        dimension.values.map((v) => {
          const metric = `portrait.${dimension.tag}.${key(v.value)}`;
          const tone = v.index === null ? null : v.index >= 120 ? "good" : v.index <= 80 ? "bad" : null;
          return h(
            "div",
            { class: "ab-pair", role: "listitem", dataset: { value: key(v.value) } },
            h("span", { class: "ab-pair-label" }, named(v.value)),
            h(
              "span",
              { class: "ab-pair-bars" },
              bar(v.members_share, null),
              h("span", { class: "ab-pair-num", dataset: { metric: `${metric}.members_share`, share: String(v.members_share) }, title: t("audiences.members_count", { n: f.int(v.members) }) }, h("span", { class: "visually-hidden" }, `${t("audiences.members")}: `), f.pct(v.members_share)),
              bar(v.customers_share, "muted"),
              h("span", { class: "ab-pair-num muted", dataset: { metric: `${metric}.customers_share`, share: String(v.customers_share) }, title: t("audiences.customers_count", { n: f.int(v.customers) }) }, h("span", { class: "visually-hidden" }, `${t("audiences.customers")}: `), f.pct(v.customers_share)),
            ),
            h("span", { class: ["ab-index", tone && `ab-index-${tone}`], dataset: { metric: `${metric}.index`, index: v.index === null ? "" : String(v.index) } }, t("audiences.index", { n: v.index === null ? "—" : f.int(v.index) })),
          );
        }),
      ),
    );
  }

  function pairs(object) {
    const entries = Object.entries(object || {});
    if (!entries.length) return "—";
    return h("ul", { class: "ab-kv" }, entries.map(([k, v]) => h("li", {}, h("span", { class: "muted" }, `${k}: `), v === null || v === undefined ? "—" : String(v))));
  }

  function previewTable(members) {
    if (!members.length) return empty(t("audiences.preview_none"));
    return table(
      [
        [t("audiences.person"), (m) => h("a", { href: `#/customers/${encodeURIComponent(m.person_id)}` }, code(m.person_id))],
        [t("audiences.brand"), (m) => m.brand_id],
        [t("audiences.traits"), (m) => pairs(m.traits)],
        [t("audiences.read_values"), (m) => pairs(m.reads)],
      ],
      members,
      { caption: t("audiences.preview") },
    );
  }

  // ---- actions

  function refreshActions() {
    const saved = state.saved;
    saveState.textContent = !saved ? t("audiences.not_saved") : dirty() ? t("audiences.unsaved_changes", { version: saved.version }) : t("audiences.saved_as", { version: saved.version });
    if (buttons.snapshot) {
      buttons.snapshot.disabled = !saved;
      exportHint.textContent = !saved ? t("audiences.snapshot_needs_save") : dirty() ? t("audiences.snapshot_saved_only", { version: saved.version }) : t("audiences.snapshot_hint", { version: saved.version });
    }
  }

  function say(node) {
    replace(feedback, node);
  }

  async function busy(button, work) {
    const all = Object.values(buttons).filter(Boolean);
    const before = all.map((b) => b.disabled);
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
      if (button.isConnected && (!document.activeElement || document.activeElement === document.body)) button.focus();
    }
  }

  async function save() {
    if (!jsonReady()) return;
    await busy(buttons.save, async () => {
      say(null);
      const id = state.def.id;
      if (!state.saved && typeof id === "string" && id) {
        // a new audience must not become the next version of someone else's
        try {
          await get(audiencePath(id), { fresh: true });
          state.errors = [{ field: "id", message: t("audiences.id_taken", { id }) }];
          showErrors(true);
          return;
        } catch (error) {
          if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 400)) {
            say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("audiences.save_failed")}: ${error.message}`));
            return;
          }
        }
      }
      let answer;
      try {
        answer = await post("/v1/audiences", state.def);
      } catch (error) {
        // 409: another brand's audience holds the id (this user does not see it)
        const found = error instanceof ApiError && error.status === 409 && !state.saved ? [{ field: "id", message: error.message }] : problemsOf(error);
        if (!found) {
          say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("audiences.save_failed")}: ${error.message}`));
          return;
        }
        state.errors = found;
        showErrors(true);
        say(h("p", { class: "notice notice-danger" }, t("audiences.not_saved_errors", { n: found.length })));
        return;
      }
      const wasNew = !state.saved;
      adopt(answer);
      state.errors = [];
      if (window.location.hash !== here()) history.replaceState(null, "", here()); // the same page: nothing redrawn
      drawHeader();
      drawEditor();
      jsonArea.value = pretty(state.def);
      refreshActions();
      if (state.estimate && estimateBox.dataset.state === "ready") {
        state.estimate = { ...state.estimate, saved_version: answer.version }; // the estimate was of what is now saved
        drawEstimate(state.estimate);
      }
      say(h("p", { class: "notice notice-good", dataset: { saved: String(answer.version) } }, wasNew ? t("audiences.created", { version: answer.version }) : t("audiences.saved", { version: answer.version })));
      await loadSnapshots();
    });
  }

  async function snapshot() {
    const saved = state.saved;
    if (!saved) return;
    await busy(buttons.snapshot, async () => {
      say(null);
      try {
        const manifest = await post(`${audiencePath(saved.id)}/export`, {});
        say(
          h(
            "div",
            { class: "notice notice-good", id: "audience-snapshot-result", dataset: { snapshot: manifest.snapshot_id } },
            t("audiences.snapshot_done", { n: f.int(manifest.count), version: manifest.version }),
            " ",
            h("span", { hidden: true, dataset: { metric: "snapshot.count" } }, String(manifest.count)),
            code(manifest.snapshot_id),
          ),
        );
        await loadSnapshots();
      } catch (error) {
        say(h("p", { class: "notice notice-danger", role: "alert" }, `${t("audiences.snapshot_failed")}: ${error.message}`));
      }
    });
  }

  buttons.save?.addEventListener("click", save);
  buttons.snapshot?.addEventListener("click", snapshot);

  async function loadSnapshots() {
    const saved = state.saved;
    snapshotsBox.hidden = !saved;
    if (!saved) return;
    await fill(snapshotsBody, async () => {
      const answer = await get(`${audiencePath(saved.id)}/snapshots`, { signal: ctx.signal, fresh: true });
      if (!answer.snapshots.length) return empty(t("audiences.snapshots_none"));
      return table(
        [
          [t("audiences.snapshot_id"), (s) => code(s.snapshot_id)],
          [t("audiences.created_at"), (s) => f.dateTime(s.created_at)],
          [t("audiences.version"), (s) => f.int(s.version), { numeric: true }],
          [t("audiences.snapshot_members"), (s) => h("span", { dataset: { snapshotCount: s.snapshot_id } }, f.int(s.count)), { numeric: true }],
          [t("audiences.source"), (s) => label("audiences.source_", s.source)],
        ],
        answer.snapshots,
        { caption: t("audiences.snapshots"), rowClass: () => "ab-snapshot-row" },
      );
    });
  }

  // ---- the header and the layout

  function drawHeader() {
    const saved = state.saved;
    const title = saved ? t("audiences.title_edit", { name: state.def.name || saved.id }) : t("audiences.title_new");
    ctx.title(title);
    replace(
      header,
      pageHeader(title, saved ? null : t("audiences.builder_lead")),
      saved
        ? h("p", { class: "profile-meta" }, code(saved.id), badge(label("audiences.kind_", state.def.kind), state.def.kind === "dynamic" ? "info" : null), h("span", { class: "muted", id: "audience-version" }, t("audiences.version_n", { version: saved.version })))
        : null,
      canWrite ? null : h("p", { class: "notice", id: "audience-read-only" }, t("audiences.read_only")),
    );
  }

  drawHeader();
  drawEditor();
  jsonArea.value = pretty(state.def);
  refreshActions();
  replace(estimateBody, h("p", { class: "state state-empty", dataset: { state: "waiting" } }, t("audiences.estimate_waiting")));
  replace(
    holder,
    header,
    h("div", { class: "ab-actions action-bar", role: "group", "aria-label": t("audiences.actions") }, buttons.save, buttons.snapshot, liveSize),
    saveState,
    exportHint,
    feedback,
    errorsBox,
    h(
      "div",
      { class: "ab-layout" },
      h("section", { class: "card ab-editor", "aria-label": t("audiences.form") }, h("div", { class: "card-body" }, form)),
      h(
        "aside",
        { class: "card ab-aside", "aria-label": t("audiences.json_label") },
        h(
          "div",
          { class: "card-body" },
          h("label", { for: "audience-json", class: "ab-json-label" }, t("audiences.json_label")),
          h("p", { class: "hint", id: "audience-json-hint" }, t("audiences.json_hint")),
          jsonArea,
          jsonError,
        ),
      ),
    ),
    estimateBox,
    snapshotsBox,
  );
  const first = [loadSnapshots()];
  if (state.saved || kept) first.push(runEstimate()); // a saved audience is sized at once; a new one once it is edited
  await Promise.all(first);
}
