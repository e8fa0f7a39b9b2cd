// Customers: find a person by an identifier (normalized by the API as ingest does: a phone typed 13800138000 is
// looked up as +8613800138000 in the brand's region), then their 360 view. Each section reads its own API and
// degrades on its own. Users whose token holds identity:merge also merge the person with another and undo merges,
// each previewed by a dry run first (the API checks the scope again).

import { ApiError, forget, get, post } from "./api.js";
import { hasScope } from "./auth.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { label, t } from "./i18n.js";
import { needBrand } from "./page-home.js";
import { badge, card, code, confirmStep, empty, errorState, facts, fill, loading, pageHeader, stat, table } from "./ui.js";

const TYPES = [
  "phone",
  "email",
  "member_card",
  "user_id",
  "wechat_unionid",
  "wechat_openid",
  "platform_buyer_id",
  "device_id",
  "ad_click_id",
];
const SCOPED = new Set(["wechat_openid", "platform_buyer_id", "ad_click_id"]);
const TIMELINE_PAGE = 20;
const found = new Map(); // person_id -> the profile the search just read (the 360 view starts from it)

function fieldBox(id, labelText, control, hint) {
  const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return {
    error,
    control,
    el: h(
      "div",
      { class: "field" },
      h("label", { for: id }, labelText),
      control,
      hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
      error,
    ),
  };
}

export async function renderSearch(ctx) {
  ctx.title(t("nav.customers"));
  ctx.main.append(pageHeader(t("customers.title"), t("customers.lead")));
  if (!ctx.brand) {
    ctx.main.append(needBrand());
    return;
  }
  const type = fieldBox(
    "identifier-type",
    t("customers.type"),
    h(
      "select",
      { id: "identifier-type", name: "type" },
      TYPES.map((name) => h("option", { value: name }, label("identifier.", name))),
    ),
  );
  const value = fieldBox(
    "identifier-value",
    t("customers.value"),
    h("input", { id: "identifier-value", name: "value", autocomplete: "off", spellcheck: "false", required: true }),
    t("customers.value_hint"),
  );
  const scope = fieldBox(
    "identifier-scope",
    t("customers.scope"),
    h("input", { id: "identifier-scope", name: "identifier_scope", autocomplete: "off", spellcheck: "false" }),
    t("customers.scope_hint"),
  );
  const formError = h("div", { class: "form-error", role: "alert", id: "search-error" });
  const submit = h("button", { type: "submit", class: "button primary" }, t("customers.find"));
  const syncScope = () => {
    scope.el.hidden = !SCOPED.has(type.control.value);
    value.control.placeholder = t(`customers.placeholder_${type.control.value}`);
  };
  type.control.addEventListener("change", syncScope);
  syncScope();

  const form = h(
    "form",
    { class: "search-form", "aria-label": t("customers.search"), novalidate: true },
    h("div", { class: "search-row" }, type.el, value.el, scope.el, h("div", { class: "field field-action" }, submit)),
    formError,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const box of [type, value, scope]) {
      box.error.textContent = "";
      box.control.removeAttribute("aria-invalid");
    }
    replace(formError);
    const kind = type.control.value;
    const text = value.control.value.trim();
    if (!text) {
      value.error.textContent = t("customers.value_required");
      value.control.setAttribute("aria-invalid", "true");
      value.control.focus();
      return;
    }
    submit.disabled = true;
    try {
      const profile = await get(
        `/v1/profiles/by-identifier/${encodeURIComponent(kind)}/${encodeURIComponent(text)}`,
        {
          query: { brand_id: ctx.brand, identifier_scope: SCOPED.has(kind) ? scope.control.value.trim() : null },
          fresh: true,
        },
      );
      found.set(profile.person_id, { at: Date.now(), profile });
      ctx.navigate(`#/customers/${encodeURIComponent(profile.person_id)}`);
    } catch (error) {
      const box = { type, value, scope, identifier_scope: scope }[error.field];
      if (error instanceof ApiError && error.status === 400 && box) {
        box.error.textContent = error.message;
        box.control.setAttribute("aria-invalid", "true");
        box.control.focus();
      } else if (error instanceof ApiError && error.status === 404) {
        replace(formError, h("p", {}, t("customers.not_found", { brand: ctx.brand })));
      } else {
        replace(formError, errorState(error));
      }
    } finally {
      submit.disabled = false;
    }
  });
  ctx.main.append(h("section", { class: "card card-wide" }, h("div", { class: "card-body" }, form)));
}

// ---- the 360 view --------------------------------------------------------------------------------------------

function tagValue(value) {
  if (value === true) return t("common.yes");
  if (value === false) return t("common.no");
  if (Array.isArray(value)) return value.join(", ");
  if (value && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function tagsTable(tags) {
  const rows = Object.entries(tags || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!rows.length) return empty(t("customers.no_tags"));
  return table(
    [
      [t("customers.tag"), ([name]) => code(name)],
      [t("customers.tag_value"), ([, v]) => h("strong", {}, tagValue(v.value))],
      [t("customers.since"), ([, v]) => f.dateTime(v.since)],
      [t("customers.expires"), ([, v]) => (v.expires_at ? f.dateTime(v.expires_at) : "—")],
    ],
    rows,
    { caption: t("customers.tags") },
  );
}

function tagsSection(ctx, profile) {
  const { el, body } = card(t("customers.tags"), { id: "section-tags", wide: true });
  const current = h("div", { class: "tags-current" }, tagsTable(profile.tags));
  const asOfInput = h("input", { id: "tags-as-of", type: "date", name: "as_of", required: true });
  const asOfError = h("p", { class: "field-error", id: "tags-as-of-error", "aria-live": "polite" });
  asOfInput.setAttribute("aria-describedby", "tags-as-of-error");
  const past = h("div", { class: "tags-past" });
  const form = h(
    "form",
    { class: "inline-form", "aria-label": t("customers.tags_as_of") },
    h("label", { for: "tags-as-of" }, t("customers.tags_as_of")),
    asOfInput,
    h("button", { type: "submit", class: "button secondary small" }, t("customers.show")),
    asOfError,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    asOfError.textContent = "";
    if (!asOfInput.value) {
      asOfError.textContent = t("customers.date_required");
      return;
    }
    await fill(past, async () => {
      try {
        const answer = await get(`/v1/profiles/${encodeURIComponent(profile.person_id)}/tags`, {
          query: { as_of: `${asOfInput.value}T23:59:59Z` },
          signal: ctx.signal,
        });
        return [h("h3", { class: "subhead" }, t("customers.tags_on", { date: f.date(answer.as_of) })), tagsTable(answer.tags)];
      } catch (error) {
        if (error.status === 400 && error.field === "as_of") {
          asOfError.textContent = error.message;
          return [];
        }
        throw error;
      }
    });
  });
  replace(body, current, form, past);
  return el;
}

function eventDetail(event) {
  const p = event.properties || {};
  switch (event.event_type) {
    case "order_placed":
      return [
        f.money(p.total_minor, p.currency),
        " · ",
        (p.lines || []).map((line) => `${line.name || line.sku} ×${line.quantity}`).join(", "),
        p.coupon_code ? ` · ${t("customers.coupon")} ${p.coupon_code}` : "",
      ];
    case "order_returned":
      return [f.money(p.refund_minor, p.currency), p.reason ? ` · ${p.reason}` : ""];
    case "coupon_issued":
    case "coupon_claimed":
    case "coupon_redeemed":
    case "coupon_expired":
      return [p.coupon_id || "", p.code ? ` · ${p.code}` : "", p.value_minor ? ` · ${f.money(p.value_minor, p.currency)}` : ""];
    case "message_delivered":
    case "message_opened":
    case "message_clicked":
      return [label("channel.", p.channel), p.campaign_id ? ` · ${p.campaign_id}` : "", p.status ? ` · ${label("msg.", p.status)}` : ""];
    case "campaign_assigned":
      return [p.campaign_id || "", " · ", label("group.", p.group)];
    case "consent_changed":
      return [label("channel.", p.channel), " · ", p.granted ? t("customers.granted") : t("customers.refused")];
    case "add_to_cart":
      return [p.name || p.sku || "", p.quantity ? ` ×${p.quantity}` : ""];
    case "points_changed":
      return [p.program || "", " · ", p.delta !== undefined ? f.int(p.delta) : f.int(p.points)];
    case "page_view":
      return [p.title || p.url || p.path || ""];
    default:
      return Object.entries(p)
        .filter(([, v]) => v !== null && typeof v !== "object")
        .slice(0, 4)
        .map(([k, v]) => `${k}: ${v}`)
        .join(" · ");
  }
}

function timelineItem(entry) {
  const event = entry.event;
  return h(
    "li",
    { class: "timeline-item", dataset: { eventType: event.event_type } },
    h("time", { datetime: event.occurred_at }, f.dateTime(event.occurred_at)),
    h(
      "div",
      { class: "timeline-body" },
      h("span", { class: "timeline-type" }, label("event.", event.event_type)),
      h("span", { class: "timeline-source" }, label("source.", event.source)),
      h("p", { class: "timeline-detail" }, eventDetail(event)),
    ),
  );
}

function timelineSection(ctx, profile) {
  const { el, body } = card(t("customers.timeline"), { id: "section-timeline", wide: true });
  const list = h("ol", { class: "timeline" });
  const more = h("button", { type: "button", class: "button secondary" }, t("customers.load_more"));
  const status = h("p", { class: "muted small", role: "status" });
  let cursor = null;
  let shown = 0;
  const page = async () => {
    const answer = await get(`/v1/profiles/${encodeURIComponent(profile.person_id)}/timeline`, {
      query: { limit: TIMELINE_PAGE, cursor },
      signal: ctx.signal,
    });
    list.append(...answer.entries.map(timelineItem));
    shown += answer.entries.length;
    cursor = answer.next_cursor || null;
    more.hidden = !cursor;
    status.textContent = t("customers.timeline_shown", { n: f.int(shown) });
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await page();
    } catch (error) {
      list.after(errorState(error));
    } finally {
      more.disabled = false;
    }
  });
  const load = fill(body, async () => {
    await page();
    return shown ? [list, h("div", { class: "more-row" }, more, status)] : empty(t("customers.no_events"));
  });
  return [el, load];
}

function ordersSection(profile) {
  const { el, body } = card(t("customers.orders"), { id: "section-orders", wide: true });
  const orders = [...profile.orders.online, ...profile.orders.offline].sort((a, b) =>
    String(b.occurred_at).localeCompare(String(a.occurred_at)),
  );
  const parts = [];
  parts.push(
    orders.length
      ? table(
          [
            [t("customers.when"), (o) => f.dateTime(o.occurred_at)],
            [t("customers.order"), (o) => code(o.order_id)],
            [t("customers.where"), (o) => [label("source.", o.source), o.store_id ? ` · ${o.store_id}` : ""]],
            [t("customers.items"), (o) => o.lines.map((l) => `${l.name || l.sku} ×${l.quantity}`).join(", ")],
            [t("customers.total"), (o) => f.money(o.total_minor, o.currency), { numeric: true }],
          ],
          orders,
          { caption: t("customers.orders") },
        )
      : empty(t("customers.no_orders")),
  );
  if (profile.returns.length) {
    parts.push(
      h("h3", { class: "subhead" }, t("customers.returns")),
      table(
        [
          [t("customers.when"), (r) => f.dateTime(r.occurred_at)],
          [t("customers.order"), (r) => code(r.order_id)],
          [t("customers.reason"), (r) => r.reason || "—"],
          [t("customers.refund"), (r) => f.money(r.refund_minor, r.currency), { numeric: true }],
        ],
        profile.returns,
      ),
    );
  }
  replace(body, parts);
  return el;
}

function identitySection(profile) {
  const { el, body } = card(t("customers.identifiers"), { id: "section-identifiers" });
  replace(
    body,
    table(
      [
        [t("customers.type"), (i) => label("identifier.", i.type)],
        [t("customers.value"), (i) => code(i.value)],
        [t("customers.scope"), (i) => i.scope || "—"],
      ],
      profile.identifiers,
      { caption: t("customers.identifiers") },
    ),
  );
  return el;
}

function traitsSection(profile) {
  const { el, body } = card(t("customers.traits"), { id: "section-traits" });
  const traits = Object.entries(profile.traits || {}).filter(([, v]) => v !== null && v !== undefined && v !== "");
  const consent = Object.entries(profile.consent || {});
  replace(
    body,
    traits.length
      ? facts(
          traits.map(([name, value]) => {
            const others = (profile.trait_values[name] || []).filter((v) => v !== String(value));
            return [
              label("trait.", name),
              [name === "gender" ? label("gender.", value) : String(value), others.length ? h("span", { class: "muted small" }, ` (${t("customers.also")}: ${others.join(", ")})`) : ""],
            ];
          }),
        )
      : empty(t("customers.no_traits")),
    h("h3", { class: "subhead" }, t("customers.consent")),
    consent.length
      ? facts(
          consent.map(([channel, state]) => [
            label("channel.", channel),
            [
              state.granted ? badge(t("customers.granted"), "good") : badge(t("customers.refused"), "bad"),
              h("span", { class: "muted small" }, ` ${f.dateTime(state.changed_at)} · ${label("source.", state.source)}`),
            ],
          ]),
        )
      : empty(t("customers.no_consent")),
  );
  return el;
}

function scoresSection(profile) {
  const { el, body } = card(t("customers.scores"), { id: "section-scores" });
  const scores = Object.entries(profile.scores || {});
  replace(
    body,
    scores.length
      ? table(
          [
            [t("customers.model"), ([name]) => h("a", { href: `#/models/${encodeURIComponent(name)}` }, name)],
            [t("customers.score"), ([, s]) => f.num(s.score, 3), { numeric: true }],
            [t("customers.items"), ([, s]) => (s.items || []).join(", ") || "—"],
            [t("customers.scored_at"), ([, s]) => f.dateTime(s.scored_at)],
          ],
          scores,
        )
      : empty(t("customers.no_scores")),
  );
  return el;
}

function messagesSection(profile) {
  const { el, body } = card(t("customers.messages"), { id: "section-messages", wide: true });
  replace(
    body,
    profile.messages.length
      ? table(
          [
            [t("customers.sent_at"), (m) => f.dateTime(m.sent_at)],
            [
              t("customers.campaign"),
              (m) => h("a", { href: `#/campaigns/${encodeURIComponent(m.campaign_id)}` }, m.campaign_id),
            ],
            [t("customers.step"), (m) => code(m.step)],
            [t("customers.channel"), (m) => label("channel.", m.channel)],
            [t("customers.status"), (m) => badge(label("msg.", m.status), m.status === "failed" || m.status === "bounced" ? "bad" : null)],
          ],
          profile.messages,
          { caption: t("customers.messages") },
        )
      : empty(t("customers.no_messages")),
  );
  return el;
}

function mergesSection(ctx, profile) {
  // a user who may merge gets, on each merge that still holds a person merged into this one, a way to undo it
  const targets = canMerge(ctx) ? undoTargets(profile) : new Map();
  const panel = targets.size ? unmergePanel(ctx, profile, [...targets.values()].flat()) : null;
  const { el, body } = card(t("customers.merges"), { id: "section-merges", wide: Boolean(panel) });
  const columns = [
    [t("customers.when"), (m) => f.dateTime(m.at)],
    [t("customers.kind"), (m) => label("lineage.", m.kind)],
    [t("customers.rule"), (m) => m.rule],
    [t("customers.actor"), (m) => m.actor || "—"],
    [t("customers.merged_ids"), (m) => [...m.merged_ids, ...Object.keys(m.parts || {})].join(", ") || "—"],
  ];
  if (panel) {
    columns.push([
      t("identity.actions"),
      (m) =>
        (targets.get(m) || []).map((id) =>
          h(
            "button",
            {
              type: "button",
              class: "button secondary small identity-undo",
              "aria-label": t("identity.undo_label", { id }),
              dataset: { undo: id },
              on: { click: () => panel.open(id) },
            },
            t("identity.undo"),
          ),
        ),
    ]);
  }
  replace(
    body,
    profile.merge_history.length ? table(columns, profile.merge_history) : empty(t("customers.no_merges")),
    panel ? panel.el : null,
  );
  return el;
}

// ---- merge and unmerge (identity:merge) ----------------------------------------------------------------------

const MERGE_SCOPE = "identity:merge";
const TRAIT_ROWS = ["gender", "birthday", "city", "country", "timezone"];
let flash = null; // {person, text}: what the last merge or unmerge did, said once on the page it reloads

function canMerge(ctx) {
  return hasScope(ctx.session, MERGE_SCOPE);
}

/** Merge-history entries -> the ids each merged into this person that are still part of them (their latest merge). */
function undoTargets(profile) {
  const still = new Set(profile.merged_from || []);
  const latest = new Map();
  for (const entry of profile.merge_history) {
    if (entry.kind !== "merge") continue;
    for (const id of entry.merged_ids) {
      const seen = latest.get(id);
      if (still.has(id) && (!seen || String(entry.at) >= String(seen.at))) latest.set(id, entry);
    }
  }
  const targets = new Map();
  for (const [id, entry] of latest) targets.set(entry, [...(targets.get(entry) || []), id]);
  return targets;
}

function identifierList(person) {
  if (!person.identifiers.length) return "—";
  return h(
    "ul",
    { class: "identity-ids" },
    person.identifiers.map((i) =>
      h(
        "li",
        { dataset: { key: i.key } },
        h("span", { class: "muted" }, `${label("identifier.", i.type)} `),
        code(i.value),
        i.scope ? ` · ${i.scope}` : "",
      ),
    ),
  );
}

function traitText(name, value) {
  if (value === null || value === undefined || value === "") return "—";
  return name === "gender" ? label("gender.", value) : String(value);
}

/** The rows a comparison shows: what a person summary (and, for persons as they are now, the profile) carries. */
function comparisonRows(persons) {
  const traits = TRAIT_ROWS.filter((name) => persons.some((p) => p.traits?.[name]));
  return [
    ["person_id", t("customers.person_id"), (p) => code(p.person_id)],
    ["name", t("trait.name"), (p) => traitText("name", p.traits?.name)],
    ["identifiers", t("customers.identifiers"), identifierList],
    ...traits.map((name) => [`trait-${name}`, label("trait.", name), (p) => traitText(name, p.traits?.[name])]),
    ["member_level", t("customers.member_level"), (p) => (p.loyalty.member_level ? label("level.", p.loyalty.member_level) : "—")],
    ["brand_points", t("customers.brand_points"), (p) => f.int(p.loyalty.brand_points)],
    [
      "points",
      t("identity.points"),
      (p) => (p.loyalty.points.length ? p.loyalty.points.map((x) => `${x.program}: ${f.int(x.points)}`).join(", ") : "—"),
    ],
    ["orders", t("customers.orders_count"), (p) => f.int(p.activity.order_count)],
    ["net_spend", t("customers.net_spend"), (p) => f.money(p.activity.net_spend_minor, p.activity.currency)],
    [
      "tags",
      t("identity.tags_count"),
      (p) => (p.tags ? f.int(Object.keys(p.tags).length) : h("span", { class: "muted" }, t("identity.tags_recomputed"))),
    ],
    ["merged_from", t("identity.merged_from"), (p) => (p.merged_from.length ? p.merged_from.join(", ") : "—")],
  ];
}

/** Persons side by side, one column each ({role, heading, person, after}); an "after" cell that differs from the
 * first column is marked. */
function comparison(id, caption, columns) {
  const rows = comparisonRows(columns.map((c) => c.person));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id, class: "identity-compare" },
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, t("identity.attribute")),
          columns.map((c) =>
            h(
              "th",
              { scope: "col", class: c.after ? "identity-after" : null, dataset: { role: c.role, person: c.person.person_id } },
              c.heading,
            ),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map(([key, header, cell]) => {
          const cells = columns.map((c) =>
            h("td", { class: c.after ? "identity-after" : null, dataset: { role: c.role, row: key } }, cell(c.person)),
          );
          const before = cells[0].textContent;
          columns.forEach((c, i) => {
            if (c.after && i > 0 && cells[i].textContent !== before) cells[i].classList.add("identity-changed");
          });
          return h("tr", { dataset: { row: key } }, h("th", { scope: "row" }, header), cells);
        }),
      ),
    ),
    h("p", { class: "hint identity-legend" }, t("identity.changed_legend")),
  );
}

function clearErrors(boxes, formError) {
  for (const box of boxes) {
    box.error.textContent = "";
    box.control.removeAttribute("aria-invalid");
  }
  replace(formError);
}

function fieldError(box, message) {
  box.error.textContent = message;
  box.control.setAttribute("aria-invalid", "true");
  box.control.focus();
}

/** An API refusal next to the field it names (a 404 names `fallback`: the person it could not find); any other
 * failure in the form's alert. */
function showRefusal(error, fields, fallback, formError) {
  const refused = error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 403;
  const box = refused ? fields[error.field] || (error.status === 404 ? fallback : null) : null;
  if (box) fieldError(box, error.message);
  else replace(formError, errorState(error));
}

/** After a merge or unmerge: nothing read before is trusted; the page of `person` is drawn again, saying `text`. */
function afterChange(ctx, person, text) {
  forget();
  found.clear();
  flash = { person, text };
  ctx.navigate(`#/customers/${encodeURIComponent(person)}`);
}

/** Keep an operation's button enabled only while the inputs are the ones just previewed. */
function previewState(button, status, result, staleText) {
  let previewed = null;
  return {
    get: () => previewed,
    set(value) {
      previewed = value;
      this.sync(value && value.key);
    },
    sync(key) {
      const fresh = Boolean(previewed) && previewed.key === key;
      button.disabled = !fresh;
      result.classList.toggle("identity-stale", Boolean(previewed) && !fresh);
      status.textContent = !previewed ? "" : fresh ? t("identity.previewed") : staleText;
    },
  };
}

function mergeSection(ctx, profile) {
  const { el, body } = card(t("identity.merge_title"), { id: "section-merge", wide: true });
  const enc = encodeURIComponent;
  const by = fieldBox(
    "merge-by",
    t("identity.find_by"),
    h(
      "select",
      { id: "merge-by", name: "by" },
      h("option", { value: "person_id" }, t("customers.person_id")),
      TYPES.map((name) => h("option", { value: name }, label("identifier.", name))),
    ),
  );
  const other = fieldBox(
    "merge-other",
    t("identity.other"),
    h("input", { id: "merge-other", name: "other", autocomplete: "off", spellcheck: "false", required: true }),
    t("identity.other_hint"),
  );
  const scope = fieldBox(
    "merge-other-scope",
    t("customers.scope"),
    h("input", { id: "merge-other-scope", name: "identifier_scope", autocomplete: "off", spellcheck: "false" }),
    t("customers.scope_hint"),
  );
  const reason = fieldBox(
    "merge-reason",
    t("identity.reason"),
    h("input", { id: "merge-reason", name: "reason", autocomplete: "off", maxlength: "500", required: true }),
    t("identity.reason_hint"),
  );
  const boxes = [by, other, scope, reason];
  const previewButton = h("button", { type: "submit", class: "button secondary", dataset: { action: "preview-merge" } }, t("identity.preview"));
  const mergeButton = h("button", { type: "button", class: "button primary", disabled: true, dataset: { action: "merge" } }, t("identity.merge"));
  const status = h("p", { class: "hint identity-status", id: "merge-status", role: "status" });
  const formError = h("div", { class: "form-error", role: "alert", id: "merge-error" });
  const result = h("div", { class: "identity-preview", id: "merge-preview-area" });
  const state = previewState(mergeButton, status, result, t("identity.stale_merge"));
  const inputs = () => {
    const kind = by.control.value;
    return {
      kind,
      text: other.control.value.trim(),
      scope: SCOPED.has(kind) ? scope.control.value.trim() : "",
      reason: reason.control.value.trim(),
    };
  };
  const key = () => JSON.stringify(inputs());
  const syncKind = () => {
    const kind = by.control.value;
    scope.el.hidden = !SCOPED.has(kind);
    other.control.placeholder = kind === "person_id" ? "" : t(`customers.placeholder_${kind}`);
  };
  syncKind();
  const form = h(
    "form",
    { class: "identity-form", "aria-label": t("identity.merge_title"), novalidate: true },
    h("div", { class: "identity-row" }, by.el, other.el, scope.el, reason.el),
    h("div", { class: "action-bar identity-actions" }, previewButton, mergeButton),
    status,
    formError,
  );
  form.addEventListener("input", () => state.sync(key()));
  form.addEventListener("change", () => {
    syncKind();
    state.sync(key());
  });
  const fields = { type: by, value: other, identifier_scope: scope, person_ids: other, reason };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(boxes, formError);
    const wanted = inputs();
    if (!wanted.text) return fieldError(other, t("identity.other_required"));
    if (!wanted.reason) return fieldError(reason, t("identity.reason_required"));
    state.set(null);
    previewButton.disabled = true;
    replace(result, loading());
    try {
      let otherProfile = null;
      let otherId = wanted.text;
      if (wanted.kind !== "person_id") {
        otherProfile = await get(`/v1/profiles/by-identifier/${enc(wanted.kind)}/${enc(wanted.text)}`, {
          query: { brand_id: profile.brand_id, identifier_scope: wanted.scope || null },
          fresh: true,
        });
        otherId = otherProfile.person_id;
      }
      const answer = await post("/v1/identity/merge", {
        person_ids: [profile.person_id, otherId],
        reason: wanted.reason,
        dry_run: true,
      });
      otherProfile = otherProfile || (await get(`/v1/profiles/${enc(otherId)}`, { fresh: true }));
      const survivor = answer.persons[0]?.person_id || profile.person_id;
      const merges = answer.merged_ids.length > 0; // else the API would leave the persons as they are
      replace(
        result,
        h(
          "p",
          { class: ["notice", !merges && "notice-danger"], id: "merge-summary" },
          merges ? t("identity.merge_note", { survivor, merged: answer.merged_ids.join(", ") }) : t("identity.merge_nothing"),
        ),
        comparison("merge-preview", t("identity.merge_caption"), [
          { role: "this", heading: t("identity.now_this"), person: profile },
          { role: "other", heading: t("identity.now_other"), person: otherProfile },
          ...answer.persons.map((p) => ({ role: "result", heading: t("identity.after_merge"), person: p, after: true })),
        ]),
      );
      if (merges) {
        state.set({ key: JSON.stringify(wanted), inputs: wanted, otherId, answer });
        state.sync(key());
      }
    } catch (error) {
      replace(result);
      showRefusal(error, fields, other, formError);
    } finally {
      previewButton.disabled = false;
    }
  });

  mergeButton.addEventListener("click", async () => {
    const previewed = state.get();
    if (!previewed || previewed.key !== key()) return;
    const { otherId, answer, inputs: wanted } = previewed;
    const survivor = answer.persons[0]?.person_id || profile.person_id;
    const go = await confirmStep(ctx.main, {
      area: "identity",
      title: t("identity.confirm_merge_title"),
      lines: [
        t("identity.confirm_merge_text", { merged: answer.merged_ids.join(", ") || "—", survivor }),
        t("identity.confirm_reason", { reason: wanted.reason }),
      ],
      action: t("identity.confirm_merge"),
    });
    if (!go) return;
    clearErrors(boxes, formError);
    mergeButton.disabled = true;
    previewButton.disabled = true;
    try {
      const done = await post("/v1/identity/merge", {
        person_ids: [profile.person_id, otherId],
        reason: wanted.reason,
        dry_run: false,
      });
      const kept = done.persons[0]?.person_id || survivor;
      afterChange(ctx, kept, t("identity.merged", { merged: done.merged_ids.join(", ") || "—", survivor: kept }));
    } catch (error) {
      state.set(null);
      showRefusal(error, fields, other, formError);
    } finally {
      previewButton.disabled = false;
    }
  });

  replace(body, h("p", { class: "hint identity-lead" }, t("identity.merge_lead")), form, result);
  return el;
}

/** The form that undoes a merge: {el, open(id)}; hidden until an "Undo this merge" of the history opens it. */
function unmergePanel(ctx, profile, ids) {
  const person = fieldBox(
    "unmerge-person",
    t("identity.unmerge_person"),
    h("select", { id: "unmerge-person", name: "merged_person_id" }, ids.map((id) => h("option", { value: id }, id))),
  );
  const reason = fieldBox(
    "unmerge-reason",
    t("identity.reason"),
    h("input", { id: "unmerge-reason", name: "reason", autocomplete: "off", maxlength: "500", required: true }),
    t("identity.reason_hint"),
  );
  const boxes = [person, reason];
  const previewButton = h("button", { type: "submit", class: "button secondary", dataset: { action: "preview-unmerge" } }, t("identity.preview"));
  const unmergeButton = h("button", { type: "button", class: "button primary", disabled: true, dataset: { action: "unmerge" } }, t("identity.unmerge"));
  const status = h("p", { class: "hint identity-status", id: "unmerge-status", role: "status" });
  const formError = h("div", { class: "form-error", role: "alert", id: "unmerge-error" });
  const result = h("div", { class: "identity-preview", id: "unmerge-preview-area" });
  const state = previewState(unmergeButton, status, result, t("identity.stale_unmerge"));
  const inputs = () => ({ id: person.control.value, reason: reason.control.value.trim() });
  const key = () => JSON.stringify(inputs());
  const path = `/v1/profiles/${encodeURIComponent(profile.person_id)}/unmerge`;
  const fields = { merged_person_id: person, reason };
  const form = h(
    "form",
    { class: "identity-form", "aria-labelledby": "unmerge-title", novalidate: true },
    h("div", { class: "identity-row identity-row-two" }, person.el, reason.el),
    h("div", { class: "action-bar identity-actions" }, previewButton, unmergeButton),
    status,
    formError,
  );
  form.addEventListener("input", () => state.sync(key()));
  form.addEventListener("change", () => state.sync(key()));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(boxes, formError);
    const wanted = inputs();
    if (!wanted.reason) return fieldError(reason, t("identity.reason_required"));
    state.set(null);
    previewButton.disabled = true;
    replace(result, loading());
    try {
      const answer = await post(path, { merged_person_id: wanted.id, reason: wanted.reason, dry_run: true });
      replace(
        result,
        h("p", { class: "notice", id: "unmerge-summary" }, t("identity.split_note", { id: wanted.id, n: f.int(answer.persons.length) })),
        comparison("unmerge-preview", t("identity.unmerge_caption"), [
          { role: "this", heading: t("identity.now_this"), person: profile },
          ...answer.persons.map((p) => ({
            role: "part",
            heading: t("identity.after_split", { id: p.person_id }),
            person: p,
            after: true,
          })),
        ]),
      );
      state.set({ key: JSON.stringify(wanted), inputs: wanted, answer });
      state.sync(key());
    } catch (error) {
      replace(result);
      showRefusal(error, fields, person, formError);
    } finally {
      previewButton.disabled = false;
    }
  });

  unmergeButton.addEventListener("click", async () => {
    const previewed = state.get();
    if (!previewed || previewed.key !== key()) return;
    const wanted = previewed.inputs;
    const go = await confirmStep(ctx.main, {
      area: "identity",
      title: t("identity.confirm_unmerge_title"),
      lines: [
        t("identity.confirm_unmerge_text", { id: wanted.id, person: profile.person_id }),
        t("identity.confirm_reason", { reason: wanted.reason }),
      ],
      action: t("identity.confirm_unmerge"),
    });
    if (!go) return;
    clearErrors(boxes, formError);
    unmergeButton.disabled = true;
    previewButton.disabled = true;
    try {
      const done = await post(path, { merged_person_id: wanted.id, reason: wanted.reason, dry_run: false });
      const stays = done.persons.some((p) => p.person_id === profile.person_id)
        ? profile.person_id
        : done.persons[0]?.person_id || profile.person_id;
      afterChange(ctx, stays, t("identity.unmerged", { id: wanted.id, person: stays }));
    } catch (error) {
      state.set(null);
      showRefusal(error, fields, person, formError);
    } finally {
      previewButton.disabled = false;
    }
  });

  const el = h(
    "section",
    { class: "panel identity-unmerge", id: "unmerge-panel", "aria-labelledby": "unmerge-title", hidden: true },
    h("h3", { id: "unmerge-title" }, t("identity.unmerge_title")),
    h("p", { class: "hint identity-lead" }, t("identity.unmerge_lead")),
    form,
    result,
  );
  return {
    el,
    open(id) {
      el.hidden = false;
      person.control.value = id;
      state.sync(key());
      reason.control.focus();
    },
  };
}

function walletSection(ctx, profile) {
  const { el, body } = card(t("customers.wallet"), { id: "section-wallet", wide: true });
  const load = fill(body, async () => {
    const wallet = await get(`/v1/wallets/${encodeURIComponent(profile.person_id)}`, {
      query: { brand_id: profile.brand_id },
      signal: ctx.signal,
    });
    if (!wallet.entries.length) return empty(t("customers.no_wallet"));
    return table(
      [
        [t("customers.offer"), (e) => e.name || e.offer_id],
        [t("customers.code"), (e) => (e.code ? code(e.code) : "—")],
        [t("customers.state"), (e) => badge(label("wallet.", e.state), e.state === "redeemed" ? "good" : e.state === "issued" ? "info" : null)],
        [t("customers.issued"), (e) => f.dateTime(e.issued_at)],
        [t("customers.valid_until"), (e) => f.dateTime(e.valid_until)],
        [t("customers.value_cost"), (e) => f.money(e.discount_minor ?? e.cost_minor, e.currency), { numeric: true }],
      ],
      wallet.entries,
      { caption: t("customers.wallet") },
    );
  });
  return [el, load];
}

function loyaltySection(ctx, profile) {
  // what the profile holds shows to any reader; the programme accounts need loyalty:read and degrade alone
  const { el, body } = card(t("customers.loyalty"), { id: "section-loyalty" });
  const l = profile.loyalty;
  const accounts = h("div", { class: "loyalty-accounts" });
  const parts = [
    facts([
      [t("customers.member_level"), l.member_level ? label("level.", l.member_level) : "—"],
      [t("customers.brand_points"), f.int(l.brand_points)],
      [t("customers.benefits"), l.active_benefits.length ? l.active_benefits.join(", ") : "—"],
    ]),
    l.points.length
      ? table(
          [
            [t("customers.programme_name"), (p) => code(p.program)],
            [t("customers.points"), (p) => f.int(p.points), { numeric: true }],
            [t("customers.brand_points"), (p) => f.int(p.brand_points), { numeric: true }],
          ],
          l.points,
        )
      : null,
    l.cards.length
      ? [
          h("h3", { class: "subhead" }, t("customers.cards")),
          table(
            [
              [t("customers.card"), (c) => code(c.card_id)],
              [t("customers.kind"), (c) => label("card.", c.kind)],
              [t("customers.balance"), (c) => f.money(c.balance_minor, c.currency), { numeric: true }],
            ],
            l.cards,
          ),
        ]
      : null,
    h("h3", { class: "subhead" }, t("customers.accounts")),
    accounts,
  ];
  replace(body, parts);
  const load = fill(accounts, async () => {
    const answer = await get(`/v1/loyalty/accounts/${encodeURIComponent(profile.person_id)}`, {
      query: { brand_id: profile.brand_id },
      signal: ctx.signal,
    });
    if (!answer.accounts.length) return empty(t("customers.no_accounts"));
    return answer.accounts.map((account) => [
      h("h4", {}, t("customers.programme", { program: account.program })),
      facts(
        [
          [t("customers.balance"), f.int(account.balance)],
          [t("customers.level"), account.level ? label("level.", account.level) : "—"],
          [t("customers.level_until"), account.level_until ? f.date(account.level_until) : null],
          [
            t("customers.next_level"),
            account.next_level
              ? t("customers.spend_to_next", {
                  level: label("level.", account.next_level),
                  amount: f.money(account.spend_to_next_minor, profile.activity.currency || "CNY"),
                })
              : null,
          ],
          [t("customers.earned_burned"), `${f.int(account.earned)} / ${f.int(account.burned)} / ${f.int(account.expired)}`],
          [
            t("customers.expiring"),
            account.lots.length ? account.lots.map((lot) => `${f.int(lot.points)} · ${f.date(lot.expires_at)}`).join("; ") : null,
          ],
        ],
        { columns: true },
      ),
    ]);
  });
  return [el, load];
}

function header(profile) {
  const a = profile.activity;
  const traits = profile.traits || {};
  const stage = profile.tags?.lifecycle?.value;
  return [
    pageHeader(traits.name || t("customers.unnamed"), null),
    h(
      "p",
      { class: "profile-meta" },
      stage ? badge(label("stage.", stage), `stage-${stage}`) : null,
      traits.member_level ? badge(label("level.", traits.member_level), "info") : null,
      traits.city ? h("span", {}, traits.city) : null,
      h("span", { class: "muted" }, t("customers.person_id")),
      code(profile.person_id),
    ),
    profile.merged_away
      ? h("p", { class: "notice" }, t("customers.merged_away", { requested: profile.requested_id, person: profile.person_id }))
      : null,
    h(
      "div",
      { class: "stat-row stat-row-wide" },
      stat(t("customers.orders_count"), f.int(a.order_count), { metric: "profile.orders" }),
      stat(t("customers.net_spend"), f.money(a.net_spend_minor, a.currency), { metric: "profile.net_spend" }),
      stat(t("customers.last_order"), f.date(a.last_order_at), { small: true }),
      stat(t("customers.first_seen"), f.date(a.first_seen_at), { small: true }),
      stat(t("customers.delivered"), f.int(a.messages_delivered)),
      stat(t("customers.coupons_redeemed"), f.int(a.coupons_redeemed)),
    ),
  ];
}

export async function renderProfile(ctx) {
  const [personId] = ctx.params;
  ctx.title(t("customers.profile"));
  const back = h("p", { class: "breadcrumb" }, h("a", { href: "#/customers" }, `← ${t("customers.back")}`));
  ctx.main.append(back);
  const holder = h("div", {}, loading());
  ctx.main.append(holder);
  let profile;
  const cached = found.get(personId);
  try {
    profile =
      cached && Date.now() - cached.at < 30_000
        ? cached.profile
        : await get(`/v1/profiles/${encodeURIComponent(personId)}`, { signal: ctx.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    replace(holder, pageHeader(t("customers.profile"), null), errorState(error));
    return;
  }
  ctx.title(profile.traits?.name || t("customers.profile"));
  const [timelineEl, timelineLoad] = timelineSection(ctx, profile);
  const [walletEl, walletLoad] = walletSection(ctx, profile);
  const [loyaltyEl, loyaltyLoad] = loyaltySection(ctx, profile);
  const grid = h(
    "div",
    { class: "cards" },
    identitySection(profile),
    traitsSection(profile),
    timelineEl,
    tagsSection(ctx, profile),
    scoresSection(profile),
    loyaltyEl,
    walletEl,
    ordersSection(profile),
    messagesSection(profile),
    mergesSection(ctx, profile),
    canMerge(ctx) ? mergeSection(ctx, profile) : null,
  );
  const said = flash && flash.person === profile.person_id ? flash.text : null;
  flash = null;
  replace(
    holder,
    header(profile),
    said ? h("p", { class: "notice notice-good", id: "identity-notice", role: "status" }, said) : null,
    grid,
  );
  await Promise.all([timelineLoad, walletLoad, loyaltyLoad]);
}
