// Bars and interval whiskers drawn from the API's numbers (HTML bars sized through the CSSOM; SVG whiskers).

import { h, s } from "./dom.js";

/**
 * Horizontal bars: rows of {label, value, text?, note?, tone?, metric?}; `max` is the full width's value.
 * `metric` names the number for tests and readers (data-metric), `text` overrides how the value reads.
 */
export function bars(rows, { max, format = String, caption } = {}) {
  const top = max ?? Math.max(1, ...rows.map((r) => r.value || 0));
  const list = h("div", { class: "bars", role: "list", "aria-label": caption || null });
  for (const row of rows) {
    const fill = h("span", { class: ["bar-fill", row.tone && `tone-${row.tone}`] });
    const share = top > 0 ? Math.max(0, Math.min(1, (row.value || 0) / top)) : 0;
    fill.style.width = `${(share * 100).toFixed(2)}%`;
    list.append(
      h(
        "div",
        { class: ["bar-row", row.indent && "bar-indent"], role: "listitem" },
        h("span", { class: "bar-label" }, row.label),
        h("span", { class: "bar-track", "aria-hidden": "true" }, fill),
        h("span", { class: "bar-value", dataset: row.metric ? { metric: row.metric } : {} }, row.text ?? format(row.value)),
        row.note ? h("span", { class: "bar-note" }, row.note) : null,
      ),
    );
  }
  return list;
}

function niceStep(span) {
  const raw = span / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) || 10;
  return unit * power;
}

const at = (share) => `${(share * 100).toFixed(2)}%`;

/**
 * Points with 95% intervals on one axis: rows of {label, value, low, high, tone?, text?}. Each row reads as its
 * label and value above a plot line (SVG in percentages, so it fits any width); `format` writes the axis ticks;
 * a `zero` line is drawn when the axis crosses 0 (a difference).
 */
export function intervals(rows, { format = String, caption, zero = false } = {}) {
  const numbers = rows.flatMap((r) => [r.value, r.low, r.high]).filter((v) => typeof v === "number");
  let lo = Math.min(0, ...numbers); // rates start at 0; a difference keeps 0 in view
  let hi = Math.max(...numbers, lo + 1e-9);
  const step = niceStep(hi - lo || 1);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const x = (v) => Math.max(0, Math.min(1, (v - lo) / (hi - lo || 1)));
  const ticks = [];
  // counted in whole steps: adding floats would print "-0" or "0.30000000000000004"
  for (let i = 0; lo + i * step <= hi + step / 2; i += 1) ticks.push(Number((lo + i * step).toPrecision(12)) || 0);
  const grid = () => [
    ...ticks.map((tick) => s("line", { class: "grid", x1: at(x(tick)), x2: at(x(tick)), y1: "0", y2: "100%" })),
    zero && lo < 0 && hi > 0 ? s("line", { class: "zero", x1: at(x(0)), x2: at(x(0)), y1: "0", y2: "100%" }) : null,
  ];
  const figure = h("figure", { class: "intervals", role: "group", "aria-label": caption || null });
  for (const row of rows) {
    const tone = `tone-${row.tone || "a"}`;
    const plot = s("svg", { class: ["iv-plot", tone], "aria-hidden": "true" }, grid());
    if (typeof row.low === "number" && typeof row.high === "number") {
      const [a, b] = [at(x(row.low)), at(x(row.high))];
      plot.append(
        s("line", { class: "whisker", x1: a, x2: b, y1: "50%", y2: "50%" }),
        s("line", { class: "cap", x1: a, x2: a, y1: "22%", y2: "78%" }),
        s("line", { class: "cap", x1: b, x2: b, y1: "22%", y2: "78%" }),
      );
    }
    if (typeof row.value === "number") plot.append(s("circle", { class: "point", cx: at(x(row.value)), cy: "50%", r: 5 }));
    figure.append(
      h(
        "div",
        { class: ["iv-row", tone] },
        h("div", { class: "iv-head" }, h("span", { class: "iv-label" }, row.label), h("span", { class: "iv-value" }, row.text ?? format(row.value))),
        plot,
      ),
    );
  }
  const axis = s("svg", { class: "iv-axis", "aria-hidden": "true" });
  ticks.forEach((tick, i) => {
    const anchor = i === 0 ? "start" : i === ticks.length - 1 ? "end" : "middle";
    axis.append(s("text", { x: at(x(tick)), y: "12", "text-anchor": anchor }, format(tick)));
  });
  figure.append(axis);
  return figure;
}
