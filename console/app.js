// The console's shell: sign-in, the layout (navigation, brand, language, user) and hash routing to the pages.
// A page renders into <main> and the shell marks it ready (data-ready) once every section has its data, and
// records how long that took (performance measure "page:<name>").

import { forget, get, whenUnauthorized } from "./api.js";
import { brandOf, chooseBrand, currentSession, hasScope, loadConfig, orgScope, signOut } from "./auth.js";
import { h, replace } from "./dom.js";
import { loadStrings, locale, preferredLocale, rememberLocale, setLocale, t } from "./i18n.js";
import * as audiences from "./page-audiences.js";
import * as campaignBuilder from "./page-campaign-builder.js";
import * as campaigns from "./page-campaigns.js";
import * as customers from "./page-customers.js";
import * as home from "./page-home.js";
import * as models from "./page-models.js";
import * as offers from "./page-offers.js";
import * as settings from "./page-settings.js";
import { renderSignIn } from "./page-signin.js";
import * as tags from "./page-tags.js";

const NAV = [
  { key: "home", href: "#/home", scope: null },
  { key: "customers", href: "#/customers", scope: "profiles:read" },
  { key: "campaigns", href: "#/campaigns", scope: "campaigns:read" },
  { key: "audiences", href: "#/audiences", scope: "audiences:read" },
  { key: "tags", href: "#/tags", scope: "audiences:read" },
  { key: "offers", href: "#/offers", scope: "offers:read" },
  { key: "models", href: "#/models", scope: "models:read" },
  { key: "settings", href: "#/settings", scope: "settings:admin" },
];

const ROUTES = [
  { name: "home", nav: "home", pattern: /^\/home$/, render: home.render },
  { name: "customers", nav: "customers", pattern: /^\/customers$/, render: customers.renderSearch },
  { name: "customer", nav: "customers", pattern: /^\/customers\/([^/]+)$/, render: customers.renderProfile },
  { name: "campaigns", nav: "campaigns", pattern: /^\/campaigns$/, render: campaigns.renderList },
  { name: "campaign-builder", nav: "campaigns", pattern: /^\/campaigns\/(?:new|([^/]+)\/edit)$/, render: campaignBuilder.render },
  {
    name: "campaign",
    nav: "campaigns",
    pattern: /^\/campaigns\/([^/]+)(?:\/runs\/([^/]+))?$/,
    render: campaigns.renderCampaign,
  },
  { name: "audiences", nav: "audiences", pattern: /^\/audiences$/, render: audiences.renderList },
  { name: "audience-builder", nav: "audiences", pattern: /^\/audiences\/new$/, render: audiences.renderBuilder }, // audience-new
  { name: "audience-builder", nav: "audiences", pattern: /^\/audiences\/([^/]+)$/, render: audiences.renderBuilder }, // audience
  { name: "tags", nav: "tags", pattern: /^\/tags$/, render: tags.render },
  { name: "offers", nav: "offers", pattern: /^\/offers$/, render: offers.render },
  { name: "models", nav: "models", pattern: /^\/models$/, render: models.renderList },
  { name: "model", nav: "models", pattern: /^\/models\/([^/]+)(?:\/([^/]+))?$/, render: models.renderModel },
  { name: "settings", nav: "settings", pattern: /^\/settings$/, render: settings.render },
];

const root = document.getElementById("app");
let layout = null; // {main, nav, ...} while signed in
let navigation = null; // the AbortController of the page being drawn
let firstPage = true;
let signInMessage = null;

function path() {
  const hash = window.location.hash.replace(/^#/, "");
  return hash.startsWith("/") ? hash : "/home";
}

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function showSignIn(message) {
  layout = null;
  navigation?.abort();
  document.title = `${t("signin.title")} · ${t("app.name")}`;
  renderSignIn(root, {
    message,
    onLocale: (name) => {
      setLocale(name);
      rememberLocale(null, name);
      showSignIn(message);
    },
    onSignedIn: (session) => {
      setLocale(preferredLocale(session.username, session.locale));
      signInMessage = null;
      const next = sessionStorage.getItem("cdp.next") || "#/home";
      sessionStorage.removeItem("cdp.next");
      navigate(next);
    },
  });
}

function endSession(message) {
  signOut();
  forget();
  signInMessage = message;
  window.location.hash = "#/sign-in";
}

whenUnauthorized(() => {
  if (!layout) return;
  sessionStorage.setItem("cdp.next", window.location.hash || "#/home");
  endSession(t("signin.session_ended"));
});

function languageSwitch(onChange) {
  const group = h("div", { class: "lang-switch", role: "group", "aria-label": t("shell.language") });
  for (const [name, text] of [
    ["en", "English"],
    ["zh", "中文"],
  ]) {
    group.append(
      h(
        "button",
        {
          type: "button",
          class: "lang",
          lang: name === "zh" ? "zh-CN" : "en",
          "aria-pressed": String(locale() === name),
          on: { click: () => onChange(name) },
        },
        text,
      ),
    );
  }
  return group;
}

function brandControl(session) {
  const own = orgScope(session).brand_id;
  if (own) {
    return h("div", { class: "brand-context" }, h("span", { class: "muted" }, t("shell.brand")), h("strong", {}, own));
  }
  const choices = h("datalist", { id: "brand-choices" });
  const input = h("input", {
    id: "brand-input",
    name: "brand",
    value: brandOf(session),
    autocomplete: "off",
    spellcheck: "false",
    list: "brand-choices",
    placeholder: t("shell.brand_placeholder"),
  });
  // the brands the user's scope covers, offered as the input is typed in (typing one still works if this fails)
  get("/v1/org/brands")
    .then((answer) => replace(choices, answer.brands.map((b) => h("option", { value: b.brand_id }, b.group_id))))
    .catch(() => {});
  const form = h(
    "form",
    {
      class: "brand-form",
      on: {
        submit: (event) => {
          event.preventDefault();
          chooseBrand(input.value.trim());
          forget();
          route();
        },
      },
    },
    h("label", { for: "brand-input" }, t("shell.brand")),
    input,
    choices,
    h("button", { type: "submit", class: "button secondary small" }, t("shell.brand_apply")),
  );
  return form;
}

function buildLayout(session) {
  const main = h("main", { id: "main", tabindex: "-1" });
  const navList = h(
    "ul",
    {},
    NAV.filter((item) => !item.scope || hasScope(session, item.scope)).map((item) =>
      h("li", {}, h("a", { href: item.href, dataset: { nav: item.key } }, t(`nav.${item.key}`))),
    ),
  );
  const skip = h(
    "a",
    {
      class: "skip-link",
      href: "#main",
      on: {
        click: (event) => {
          event.preventDefault();
          main.focus();
        },
      },
    },
    t("shell.skip"),
  );
  const shell = h(
    "div",
    { class: "shell" },
    skip,
    h(
      "aside",
      { class: "sidebar" },
      h(
        "div",
        { class: "sidebar-inner" },
        h(
          "a",
          { class: "brandmark", href: "#/home" },
          h("img", { src: "logo.svg", alt: "", width: "28", height: "28" }),
          h("span", {}, t("app.name")),
        ),
        h("nav", { "aria-label": t("shell.navigation") }, navList),
      ),
    ),
    h(
      "div",
      { class: "main-col" },
      h(
        "header",
        { class: "topbar" },
        brandControl(session),
        h("div", { class: "spacer" }),
        languageSwitch((name) => {
          setLocale(name);
          rememberLocale(session.username, name);
          layout = null;
          route();
        }),
        h("span", { class: "user", title: session.username }, h("span", { class: "avatar", "aria-hidden": "true" }, (session.name || "?").slice(0, 1).toUpperCase()), h("span", { class: "user-name" }, session.name)),
        h(
          "button",
          { type: "button", class: "button secondary small", on: { click: () => endSession(t("signin.signed_out")) } },
          t("shell.sign_out"),
        ),
      ),
      main,
    ),
  );
  replace(root, shell);
  return { main, navList };
}

async function route() {
  const session = currentSession();
  const where = path();
  if (!session) {
    if (where !== "/sign-in") {
      sessionStorage.setItem("cdp.next", `#${where}`);
      signInMessage = signInMessage || (where === "/home" ? null : t("signin.required_for_page"));
    }
    showSignIn(signInMessage);
    return;
  }
  if (where === "/sign-in") {
    navigate("#/home");
    return;
  }
  if (!layout) layout = buildLayout(session);
  navigation?.abort();
  navigation = new AbortController();
  const signal = navigation.signal;
  const started = firstPage ? 0 : performance.now(); // the first page counts from the navigation itself
  firstPage = false;
  const found = ROUTES.map((r) => ({ r, match: r.pattern.exec(where) })).find((x) => x.match);
  for (const link of layout.navList.querySelectorAll("a")) {
    if (found && link.dataset.nav === found.r.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = layout.main;
  delete main.dataset.ready;
  main.dataset.page = found ? found.r.name : "not-found";
  replace(main);
  if (!found) {
    main.append(
      h("h1", { tabindex: "-1" }, t("common.page_not_found")),
      h("p", {}, h("a", { href: "#/home" }, t("nav.home"))),
    );
    document.title = `${t("common.page_not_found")} · ${t("app.name")}`;
    main.dataset.ready = "not-found";
    return;
  }
  const params = found.match.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
  const ctx = {
    main,
    params,
    signal,
    session,
    brand: brandOf(session),
    navigate,
    title: (text) => {
      document.title = `${text} · ${t("app.name")}`;
    },
  };
  try {
    await found.r.render(ctx);
  } catch (error) {
    if (error && error.name === "AbortError") return;
    console.error(error);
    main.append(h("p", { class: "state state-error", role: "alert" }, `${t("common.failed")}: ${error.message}`));
  }
  if (signal.aborted) return;
  main.dataset.ready = found.r.name;
  performance.measure(`page:${found.r.name}`, { start: started, end: performance.now() });
  const heading = main.querySelector("h1");
  if (heading && !main.contains(document.activeElement)) heading.focus({ preventScroll: true });
}

async function start() {
  try {
    await Promise.all([loadStrings(), loadConfig()]);
  } catch (error) {
    replace(root, h("p", { class: "state state-error", role: "alert" }, `The console could not start: ${error.message}`));
    return;
  }
  const session = currentSession();
  setLocale(session ? preferredLocale(session.username, session.locale) : preferredLocale(null, null));
  window.addEventListener("hashchange", route);
  await route();
}

start();
