// Settings of the deployment (scope settings:admin, no org scope): its API keys (create one, shown once; revoke),
// the console's users (add with a role; disable) and the connector sources (listed, never with their secrets). Each
// section reads its own API and degrades on its own; the API's refusals show next to the field they name.

import { ApiError, get, post, remove } from "./api.js";
import { orgScope, scopes } from "./auth.js";
import { h, replace } from "./dom.js";
import * as f from "./format.js";
import { label, t } from "./i18n.js";
import { badge, card, code, confirmStep, empty, errorState, fill, pageHeader, table } from "./ui.js";

const ROLES = ["marketer", "analyst", "operator", "admin"]; // cdp.access.models.ROLES
const KEYS = "/v1/admin/api-keys";
const USERS = "/v1/admin/console-users";

// ---- pieces ---------------------------------------------------------------------------------------------------

/** A labelled control with its error element `<id>-error` (and hint `<id>-hint`). */
function fieldBox(id, labelText, control, hint) {
  const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return {
    control,
    error,
    focus: () => control.focus(),
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

function input(id, name, attrs = {}) {
  return h("input", { id, name, autocomplete: "off", spellcheck: "false", ...attrs });
}

/** The scopes as checkboxes in a fieldset (the fieldset is the control that is marked invalid). */
function scopeChecks(id, names) {
  const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const boxes = names.map((name) =>
    h("input", { type: "checkbox", id: `${id}-${name.replace(/[^a-z]/g, "-")}`, name: "scopes", value: name }),
  );
  const fieldset = h(
    "fieldset",
    { class: "settings-scopes", id, "aria-describedby": `${id}-error ${id}-hint` },
    h("legend", {}, t("settings.scopes")),
    h("p", { class: "hint", id: `${id}-hint` }, t("settings.scopes_hint")),
    h(
      "div",
      { class: "settings-scope-grid" },
      boxes.map((box, i) => h("label", { class: "settings-check", for: box.id }, box, h("span", {}, code(names[i])))),
    ),
    error,
  );
  return {
    control: fieldset,
    error,
    el: fieldset,
    focus: () => boxes[0]?.focus(),
    values: () => boxes.filter((box) => box.checked).map((box) => box.value),
    reset: () => boxes.forEach((box) => (box.checked = false)),
  };
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
  box.focus();
}

/** An API refusal next to the field it names (`scope.brand_id`, `scopes.2`, ...), else in the form's alert. */
function showRefusal(error, fields, formError) {
  const name = error instanceof ApiError && error.status === 400 && error.field ? error.field : null;
  const box = name ? fields[name] || fields[name.split(".")[0]] : null;
  if (box) fieldError(box, error.message);
  else replace(formError, errorState(error));
}

function placeOf(scope) {
  const parts = [scope.group_id, scope.brand_id, scope.dealer_id, scope.store_id].filter(Boolean);
  return parts.length ? parts.join(" / ") : t("settings.everywhere");
}

function scopeList(names) {
  return h("ul", { class: "settings-scope-list" }, names.map((name) => h("li", {}, code(name))));
}

/** The place a form asks for: brand and store ({} when both are empty). */
function placeFrom(brand, store) {
  const scope = {};
  if (brand.control.value.trim()) scope.brand_id = brand.control.value.trim();
  if (store.control.value.trim()) scope.store_id = store.control.value.trim();
  return scope;
}

// ---- API keys -------------------------------------------------------------------------------------------------

function keysTable(answer, onRevoke) {
  if (!answer.keys.length) return empty(t("settings.keys_none"));
  return table(
    [
      [t("settings.key_id"), (k) => code(k.key_id)],
      [t("settings.client"), (k) => h("strong", {}, k.client)],
      [t("settings.scopes"), (k) => scopeList(k.scopes)],
      [t("settings.place"), (k) => placeOf(k.scope)],
      [t("settings.created"), (k) => (k.created_at ? [f.dateTime(k.created_at), k.created_by ? h("div", { class: "muted small" }, k.created_by) : null] : "—")],
      [
        t("settings.actions"),
        (k) =>
          h(
            "button",
            {
              type: "button",
              class: "button secondary small",
              dataset: { action: "revoke", keyId: k.key_id },
              "aria-label": t("settings.revoke_key", { id: k.key_id, client: k.client }),
              on: { click: () => onRevoke(k) },
            },
            t("settings.revoke"),
          ),
      ],
    ],
    answer.keys,
    { caption: t("settings.keys_title"), rowClass: () => "settings-row" },
  );
}

/** The key just made, shown once: a warning, the key in a read-only field and a copy button. */
function newKeyPanel(created, onDone) {
  const field = h("input", { id: "settings-new-key", class: "settings-secret", readonly: true, value: created.api_key, "aria-describedby": "settings-new-key-warning" });
  const status = h("p", { class: "hint", id: "settings-copy-status", role: "status" });
  const copy = h(
    "button",
    {
      type: "button",
      class: "button primary small",
      dataset: { action: "copy-key" },
      on: {
        click: async () => {
          field.select();
          try {
            await navigator.clipboard.writeText(field.value);
            status.textContent = t("settings.copied");
          } catch {
            status.textContent = t("settings.copy_by_hand");
          }
        },
      },
    },
    t("settings.copy"),
  );
  const done = h("button", { type: "button", class: "button secondary small", dataset: { action: "hide-key" }, on: { click: onDone } }, t("settings.hide_key"));
  return h(
    "div",
    { class: "settings-new-key", id: "settings-new-key-panel", tabindex: "-1" },
    h("p", { class: "notice notice-danger", id: "settings-new-key-warning" }, t("settings.key_once", { id: created.key_id, client: created.client })),
    h("div", { class: "field" }, h("label", { for: "settings-new-key" }, t("settings.new_key")), h("div", { class: "settings-copy-row" }, field, copy, done)),
    status,
    h("p", { class: "hint" }, t("settings.key_effect", { seconds: created.takes_effect_within_seconds })),
  );
}

function keysSection(ctx, grantable) {
  const { el, body } = card(t("settings.keys_title"), { wide: true, id: "settings-keys" });
  const listArea = h("div", { id: "settings-keys-list" });
  const shown = h("div", { class: "settings-shown", id: "settings-keys-shown" });
  const feedback = h("p", { class: "hint settings-feedback", id: "settings-keys-feedback", role: "status" });

  const client = fieldBox("settings-key-client", t("settings.client"), input("settings-key-client", "client", { maxlength: "128", required: true }), t("settings.client_hint"));
  const checks = scopeChecks("settings-key-scopes", grantable);
  const brand = fieldBox("settings-key-brand", t("settings.brand"), input("settings-key-brand", "brand_id"), t("settings.brand_hint"));
  const store = fieldBox("settings-key-store", t("settings.store"), input("settings-key-store", "store_id"), t("settings.store_hint"));
  const boxes = [client, checks, brand, store];
  const formError = h("div", { class: "form-error", role: "alert", id: "settings-key-error" });
  const submit = h("button", { type: "submit", class: "button primary", dataset: { action: "create-key" } }, t("settings.create_key"));
  const form = h(
    "form",
    { class: "settings-form", id: "settings-key-form", "aria-label": t("settings.create_key"), novalidate: true },
    h("h3", {}, t("settings.create_key")),
    h("div", { class: "settings-row-fields" }, client.el, brand.el, store.el),
    checks.el,
    h("div", { class: "action-bar" }, submit),
    formError,
  );
  const fields = { client, scopes: checks, scope: brand, "scope.brand_id": brand, "scope.group_id": brand, "scope.dealer_id": store, "scope.store_id": store };

  const refresh = () =>
    fill(listArea, async () => keysTable(await get(KEYS, { signal: ctx.signal, fresh: true }), revoke));

  async function revoke(key) {
    const go = await confirmStep(el, {
      area: "settings",
      tone: "danger",
      title: t("settings.revoke_title"),
      lines: [t("settings.revoke_text", { id: key.key_id, client: key.client })],
      action: t("settings.revoke"),
    });
    if (!go) return;
    feedback.textContent = "";
    try {
      const answer = await remove(`${KEYS}/${encodeURIComponent(key.key_id)}`);
      feedback.textContent = t("settings.revoked", { id: answer.key_id, seconds: answer.takes_effect_within_seconds });
    } catch (error) {
      replace(shown, errorState(error));
    }
    await refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(boxes, formError);
    feedback.textContent = "";
    const request = { client: client.control.value.trim(), scopes: checks.values(), scope: placeFrom(brand, store) };
    if (!request.client) return fieldError(client, t("settings.client_required"));
    if (!request.scopes.length) return fieldError(checks, t("settings.scopes_required"));
    submit.disabled = true;
    try {
      const created = await post(KEYS, request);
      replace(
        shown,
        newKeyPanel(created, () => {
          replace(shown);
          submit.focus();
        }),
      );
      shown.firstChild.focus();
      form.reset();
      await refresh();
    } catch (error) {
      showRefusal(error, fields, formError);
    } finally {
      submit.disabled = false;
    }
  });
  replace(body, h("p", { class: "lead settings-lead" }, t("settings.keys_lead")), shown, feedback, listArea, form);
  return { el, ready: refresh() };
}

// ---- console users ------------------------------------------------------------------------------------------------

function usersTable(answer, self, onDisable) {
  if (!answer.users.length) return empty(t("settings.users_none"));
  return table(
    [
      [t("settings.username"), (u) => [h("strong", {}, u.username), u.name && u.name !== u.username ? h("div", { class: "muted small" }, u.name) : null]],
      [t("settings.scopes"), (u) => scopeList(u.scopes)],
      [t("settings.place"), (u) => placeOf(u.scope)],
      [t("settings.locale"), (u) => (u.locale ? label("settings.locale_", u.locale) : "—")],
      [
        t("settings.status"),
        (u) => [
          u.enabled ? badge(t("settings.enabled"), "good") : badge(t("settings.disabled"), "bad"),
          u.problem ? h("div", { class: "muted small" }, u.problem) : null,
        ],
      ],
      [
        t("settings.actions"),
        (u) =>
          u.enabled && u.username !== self
            ? h(
                "button",
                {
                  type: "button",
                  class: "button secondary small",
                  dataset: { action: "disable", username: u.username },
                  "aria-label": t("settings.disable_user", { name: u.username }),
                  on: { click: () => onDisable(u) },
                },
                t("settings.disable"),
              )
            : "—",
      ],
    ],
    answer.users,
    { caption: t("settings.users_title"), rowClass: (u) => (u.enabled ? "settings-row" : "settings-row settings-row-off") },
  );
}

function usersSection(ctx) {
  const { el, body } = card(t("settings.users_title"), { wide: true, id: "settings-users" });
  const listArea = h("div", { id: "settings-users-list" });
  const feedback = h("p", { class: "hint settings-feedback", id: "settings-users-feedback", role: "status" });
  const username = fieldBox("settings-user-name", t("settings.username"), input("settings-user-name", "username", { maxlength: "64", required: true }), t("settings.username_hint"));
  const name = fieldBox("settings-user-display", t("settings.display_name"), input("settings-user-display", "name", { maxlength: "100", autocomplete: "off" }));
  const role = fieldBox(
    "settings-user-role",
    t("settings.role"),
    h("select", { id: "settings-user-role", name: "role" }, ROLES.map((r) => h("option", { value: r }, label("settings.role_", r)))),
    t("settings.role_hint"),
  );
  const brand = fieldBox("settings-user-brand", t("settings.brand"), input("settings-user-brand", "brand_id"), t("settings.brand_hint"));
  const store = fieldBox("settings-user-store", t("settings.store"), input("settings-user-store", "store_id"), t("settings.store_hint"));
  const localeBox = fieldBox(
    "settings-user-locale",
    t("settings.locale"),
    h("select", { id: "settings-user-locale", name: "locale" }, ["en", "zh"].map((l) => h("option", { value: l }, label("settings.locale_", l)))),
  );
  const password = fieldBox(
    "settings-user-password",
    t("settings.password"),
    input("settings-user-password", "password", { type: "password", autocomplete: "new-password", minlength: "8", maxlength: "256", required: true }),
    t("settings.password_hint"),
  );
  const boxes = [username, name, role, brand, store, localeBox, password];
  const formError = h("div", { class: "form-error", role: "alert", id: "settings-user-error" });
  const submit = h("button", { type: "submit", class: "button primary", dataset: { action: "add-user" } }, t("settings.add_user"));
  const form = h(
    "form",
    { class: "settings-form", id: "settings-user-form", "aria-label": t("settings.add_user"), novalidate: true },
    h("h3", {}, t("settings.add_user")),
    h("div", { class: "settings-row-fields" }, username.el, name.el, role.el, localeBox.el),
    h("div", { class: "settings-row-fields" }, brand.el, store.el, password.el),
    h("div", { class: "action-bar" }, submit),
    formError,
  );
  const fields = {
    username,
    name,
    role,
    scopes: role,
    locale: localeBox,
    password,
    scope: brand,
    "scope.brand_id": brand,
    "scope.group_id": brand,
    "scope.dealer_id": store,
    "scope.store_id": store,
  };
  const self = ctx.session.username;
  const refresh = () => fill(listArea, async () => usersTable(await get(USERS, { signal: ctx.signal, fresh: true }), self, disable));

  async function disable(user) {
    const go = await confirmStep(el, {
      area: "settings",
      tone: "danger",
      title: t("settings.disable_title"),
      lines: [t("settings.disable_text", { name: user.username })],
      action: t("settings.disable"),
    });
    if (!go) return;
    feedback.textContent = "";
    try {
      const answer = await remove(`${USERS}/${encodeURIComponent(user.username)}`);
      feedback.textContent = t("settings.disabled_done", { name: answer.username, minutes: Math.round(answer.sessions_end_within_seconds / 60) });
    } catch (error) {
      replace(formError, errorState(error));
    }
    await refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(boxes, formError);
    feedback.textContent = "";
    const request = {
      username: username.control.value.trim(),
      name: name.control.value.trim(),
      role: role.control.value,
      scope: placeFrom(brand, store),
      locale: localeBox.control.value,
      password: password.control.value,
    };
    if (!request.username) return fieldError(username, t("settings.username_required"));
    if (request.password.length < 8) return fieldError(password, t("settings.password_short"));
    submit.disabled = true;
    try {
      const added = await post(USERS, request);
      form.reset();
      feedback.textContent = t("settings.user_added", { name: added.username });
      await refresh();
    } catch (error) {
      showRefusal(error, fields, formError);
    } finally {
      password.control.value = "";
      submit.disabled = false;
    }
  });
  replace(body, h("p", { class: "lead settings-lead" }, t("settings.users_lead")), feedback, listArea, form);
  return { el, ready: refresh() };
}

// ---- sources -------------------------------------------------------------------------------------------------------

async function sourcesCard(ctx) {
  const answer = await get("/v1/admin/sources", { signal: ctx.signal });
  if (!answer.sources.length) return empty(t("settings.sources_none"));
  return [
    h("p", { class: "lead settings-lead" }, t("settings.sources_lead")),
    table(
      [
        [t("settings.source"), (s) => code(s.source_id)],
        [t("settings.kind"), (s) => label("settings.kind_", s.kind)],
        [t("settings.brand"), (s) => s.brand_id],
        [t("settings.store"), (s) => s.store_id || "—"],
        [t("settings.detail"), (s) => s.detail || "—"],
        [t("settings.accepts"), (s) => h("ul", { class: "settings-scope-list" }, s.accepts.map((a) => h("li", {}, code(a))))],
        [t("settings.secrets"), (s) => (s.secrets.length ? s.secrets.join(", ") : "—")],
      ],
      answer.sources,
      { caption: t("settings.sources_title") },
    ),
  ];
}

export async function render(ctx) {
  ctx.title(t("nav.settings"));
  ctx.main.append(pageHeader(t("settings.title"), t("settings.lead")));
  if (Object.values(orgScope(ctx.session)).some(Boolean)) {
    ctx.main.append(h("p", { class: "notice" }, t("settings.org_scoped")));
  }
  const grantable = [...scopes(ctx.session)].sort();
  const keys = keysSection(ctx, grantable);
  const users = usersSection(ctx);
  const sources = card(t("settings.sources_title"), { wide: true, id: "settings-sources" });
  ctx.main.append(h("div", { class: "cards settings-cards" }, keys.el, users.el, sources.el));
  await Promise.all([keys.ready, users.ready, fill(sources.body, () => sourcesCard(ctx))]);
}
