// The sign-in page: user name and password, errors next to their field or above the button.

import { SignInError, signIn } from "./auth.js";
import { h, replace } from "./dom.js";
import { locale, t } from "./i18n.js";

function field(id, labelText, attrs) {
  const input = h("input", { id, name: id, "aria-describedby": `${id}-error`, ...attrs });
  const error = h("p", { id: `${id}-error`, class: "field-error", "aria-live": "polite" });
  return { input, error, el: h("div", { class: "field" }, h("label", { for: id }, labelText), input, error) };
}

function message(error) {
  if (!(error instanceof SignInError)) return t("signin.failed", { reason: String(error && error.message) });
  if (error.kind === "credentials") return t("signin.wrong");
  if (error.kind === "challenge") return t("signin.challenge", { challenge: error.message });
  if (error.kind === "unavailable") return t("signin.unavailable", { reason: error.message });
  if (error.kind === "config") return t("signin.config", { reason: error.message });
  return error.message;
}

export function renderSignIn(root, { message: notice, onSignedIn, onLocale }) {
  const username = field("username", t("signin.username"), {
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
  });
  const password = field("password", t("signin.password"), { type: "password", autocomplete: "current-password" });
  const formError = h("p", { class: "form-error", role: "alert", id: "sign-in-error" });
  const submit = h("button", { type: "submit", class: "button primary wide" }, t("signin.submit"));
  const form = h(
    "form",
    { class: "sign-in-form", novalidate: true, "aria-describedby": "sign-in-error" },
    username.el,
    password.el,
    formError,
    submit,
  );

  const clearErrors = () => {
    for (const f of [username, password]) {
      f.error.textContent = "";
      f.input.removeAttribute("aria-invalid");
    }
    formError.textContent = "";
  };
  const fieldError = (f, text) => {
    f.error.textContent = text;
    f.input.setAttribute("aria-invalid", "true");
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const name = username.input.value.trim();
    const secret = password.input.value;
    if (!name) fieldError(username, t("signin.required"));
    if (!secret) fieldError(password, t("signin.required"));
    if (!name || !secret) {
      (name ? password : username).input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t("signin.signing_in");
    form.setAttribute("aria-busy", "true");
    try {
      onSignedIn(await signIn(name, secret));
    } catch (error) {
      const target = error instanceof SignInError && error.field === "password" ? password : username;
      if (error instanceof SignInError && error.kind === "invalid" && error.field) fieldError(target, error.message);
      else formError.textContent = message(error);
      password.input.value = "";
      (error.kind === "credentials" ? password : target).input.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = t("signin.submit");
      form.removeAttribute("aria-busy");
    }
  });

  const languages = h(
    "div",
    { class: "lang-switch", role: "group", "aria-label": t("shell.language") },
    [
      ["en", "English"],
      ["zh", "中文"],
    ].map(([name, text]) =>
      h(
        "button",
        {
          type: "button",
          class: "lang",
          lang: name === "zh" ? "zh-CN" : "en",
          "aria-pressed": String(locale() === name),
          on: { click: () => onLocale(name) },
        },
        text,
      ),
    ),
  );

  replace(
    root,
    h(
      "main",
      { class: "sign-in", id: "main", dataset: { page: "sign-in", ready: "sign-in" } },
      h(
        "div",
        { class: "sign-in-card" },
        h(
          "div",
          { class: "brandmark" },
          h("img", { src: "logo.svg", alt: "", width: "32", height: "32" }),
          h("span", {}, t("app.name")),
        ),
        h("h1", {}, t("signin.title")),
        h("p", { class: "lead" }, t("signin.lead")),
        notice ? h("p", { class: "notice", role: "status" }, notice) : null,
        form,
        h("div", { class: "sign-in-footer" }, languages),
      ),
    ),
  );
  username.input.focus();
}
