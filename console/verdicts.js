// The API's verdicts (conversion lift, revenue per person) told in the console's language from the numbers the
// API answers with; in English the API's own sentence is shown as it wrote it.

import * as f from "./format.js";
import { locale, t } from "./i18n.js";

const pts = (rate) => `${rate >= 0 ? "+" : ""}${(rate * 100).toFixed(1)}`;

/** A p-value as Python's "{:.3g}" writes it (0.0123, 3e-05, 1), so both languages show the same number. */
export function g3(value) {
  const x = Number(value);
  if (x === 0) return "0";
  const exponent = Math.floor(Math.log10(Math.abs(x)));
  if (exponent < -4 || exponent >= 3) {
    const [mantissa, power] = x.toExponential(2).split("e");
    const digits = mantissa.replace(/\.?0+$/, "");
    const n = Number(power);
    return `${digits}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  return x.toPrecision(3).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

/** A conversion lift (treatment against control: rates, the difference's 95% interval, p). */
export function liftVerdict(lift) {
  if (locale() === "en" || !lift) return lift ? lift.verdict : "";
  const { treatment, control, low, high, p_value: p } = lift;
  if (low === null || high === null || p === null || treatment.rate === null || control.rate === null) {
    return t("verdict.no_comparison");
  }
  if (!lift.conclusive) {
    return t("verdict.too_few", { treated: treatment.size, control: control.size }); // as the API writes them
  }
  const vars = {
    points: pts(treatment.rate - control.rate),
    low: pts(low),
    high: pts(high),
    p: g3(p),
  };
  if (low > 0) return t("verdict.raised", vars);
  if (high < 0) return t("verdict.lowered", vars);
  return t("verdict.no_difference", vars);
}

/** A difference of means per person (revenue), in the summary's currency. */
export function revenueVerdict(r, currency) {
  if (locale() === "en" || !r) return r ? r.verdict : "";
  if (r.difference === null || r.low === null || r.high === null || r.p_value === null) {
    return t("verdict.no_comparison");
  }
  if (!r.conclusive) return t("verdict.too_few_amounts");
  const vars = {
    amount: f.signedMoney(r.difference, currency),
    low: f.signedMoney(r.low, currency),
    high: f.signedMoney(r.high, currency),
    p: g3(r.p_value),
  };
  if (r.low > 0) return t("verdict.spent_more", vars);
  if (r.high < 0) return t("verdict.spent_less", vars);
  return t("verdict.no_difference_amount", vars);
}
