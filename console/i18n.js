// Every visible string of the console, in English and Chinese (strings*.json); text the API writes (messages,
// definitions) is shown as the API words it, except the verdicts, which verdicts.js tells from their numbers.

export const LOCALES = ["en", "zh"];
const INTL = { en: "en-US", zh: "zh-CN" };
const HTML_LANG = { en: "en", zh: "zh-CN" };
let strings = { en: {}, zh: {} };
let current = "en";

// The shell's strings, then each area's own file (one file per area keeps edits to one area in one place).
const FILES = [
  "strings.json",
  "strings-audiences.json",
  "strings-campaign-builder.json",
  "strings-identity.json",
  "strings-settings.json",
];

export async function loadStrings() {
  const files = await Promise.all(
    FILES.map(async (name) => {
      const response = await fetch(new URL(name, import.meta.url), { cache: "no-store" });
      return response.json();
    }),
  );
  strings = { en: {}, zh: {} };
  for (const file of files) {
    for (const name of LOCALES) Object.assign(strings[name], file[name] || {});
  }
}

export function locale() {
  return current;
}

/** The Intl locale of the console's language (numbers, dates). */
export function intlLocale() {
  return INTL[current];
}

export function setLocale(name) {
  current = LOCALES.includes(name) ? name : "en";
  document.documentElement.lang = HTML_LANG[current];
}

/** The string `key` with `{name}` placeholders filled; a key missing in Chinese falls back to English. */
export function t(key, vars) {
  const text = strings[current]?.[key] ?? strings.en?.[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** `t(prefix + value)` when the console knows the value (a status, a channel), else the value as the API gave it. */
export function label(prefix, value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = prefix + value;
  return strings[current]?.[key] ?? strings.en?.[key] ?? String(value);
}

/** The language a user chose before on this browser, else the one their account names. */
export function preferredLocale(username, accountLocale) {
  const chosen = username ? localStorage.getItem(`cdp.locale.${username}`) : localStorage.getItem("cdp.locale");
  if (LOCALES.includes(chosen)) return chosen;
  if (LOCALES.includes(accountLocale)) return accountLocale;
  return username ? "en" : String(navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function rememberLocale(username, name) {
  localStorage.setItem("cdp.locale", name);
  if (username) localStorage.setItem(`cdp.locale.${username}`, name);
}
