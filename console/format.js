// Numbers, money and dates in the console's language. Money is integer minor units of its currency, shown as the
// API's `display` fields show it ("7,649.00 CNY"), so computed and API-formatted amounts read alike.

import { intlLocale } from "./i18n.js";

const digitsCache = new Map();

function currencyDigits(currency) {
  if (!digitsCache.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch {
      digits = 2; // an unknown code: shown with two decimals
    }
    digitsCache.set(currency, digits);
  }
  return digitsCache.get(currency);
}

export function int(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(intlLocale(), { maximumFractionDigits: 0 }).format(value);
}

export function num(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return new Intl.NumberFormat(intlLocale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(
    value,
  );
}

/** A rate (0.1485) as a percentage ("14.9%"). */
export function pct(rate, digits = 1) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return "—";
  return new Intl.NumberFormat(intlLocale(), {
    style: "percent",
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(rate);
}

/** A difference of two rates in percentage points, signed ("+10.3"). */
export function points(diff, digits = 1) {
  if (diff === null || diff === undefined) return "—";
  const text = num(diff * 100 || 0, digits);
  return diff > 0 ? `+${text}` : text;
}

/** Minor units as money: "7,649.00 CNY". A fraction of a minor unit (a mean) is rounded to the nearest. */
export function money(minor, currency) {
  if (minor === null || minor === undefined || Number.isNaN(minor)) return "—";
  if (!currency) return int(minor);
  const digits = currencyDigits(currency);
  const amount = Math.round(minor) / 10 ** digits;
  return `${new Intl.NumberFormat(intlLocale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(amount)} ${currency}`;
}

/** The amount alone, whole units ("76"): axis ticks beside money written out in full. */
export function moneyTick(minor, currency) {
  const digits = currency ? currencyDigits(currency) : 0;
  return new Intl.NumberFormat(intlLocale(), { maximumFractionDigits: 0 }).format(minor / 10 ** digits);
}

export function signedMoney(minor, currency) {
  const text = money(minor, currency);
  return minor > 0 ? `+${text}` : text;
}

export function date(iso) {
  if (!iso) return "—";
  const value = new Date(iso);
  if (Number.isNaN(value.getTime())) return String(iso);
  return new Intl.DateTimeFormat(intlLocale(), { dateStyle: "medium" }).format(value);
}

export function dateTime(iso) {
  if (!iso) return "—";
  const value = new Date(iso);
  if (Number.isNaN(value.getTime())) return String(iso);
  return new Intl.DateTimeFormat(intlLocale(), { dateStyle: "medium", timeStyle: "short" }).format(value);
}

/** "2026-11" as the month's name in the console's language. */
export function month(text) {
  const match = /^(\d{4})-(\d{2})$/.exec(text || "");
  if (!match) return text || "—";
  const value = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, 1));
  return new Intl.DateTimeFormat(intlLocale(), { year: "numeric", month: "long", timeZone: "UTC" }).format(value);
}
