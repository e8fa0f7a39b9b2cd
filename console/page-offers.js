// Offers & budgets: the brand's offer catalog with what each has issued, and its budget pools used against total.

import { get } from "./api.js";
import { bars } from "./charts.js";
import { h } from "./dom.js";
import * as f from "./format.js";
import { label, t } from "./i18n.js";
import { needBrand, poolRow } from "./page-home.js";
import { badge, card, code, empty, fill, pageHeader, table } from "./ui.js";

function kindOf(offer) {
  return ["coupon", "red_packet", "points", "gift"].find((k) => offer[k]) || "coupon";
}

function benefit(offer) {
  const c = offer.coupon;
  if (c) {
    const off = c.amount_off_minor ? f.money(c.amount_off_minor, offer.currency) : c.percent_off ? `${f.num(c.percent_off, 0)}%` : "—";
    const parts = [t("offers.off", { amount: off })];
    if (c.threshold_minor) parts.push(t("offers.over", { amount: f.money(c.threshold_minor, offer.currency) }));
    if (c.max_discount_minor) parts.push(t("offers.capped", { amount: f.money(c.max_discount_minor, offer.currency) }));
    return parts.join(" · ");
  }
  if (offer.red_packet) return f.money(offer.red_packet.amount_minor, offer.currency);
  if (offer.points) return t("offers.points", { n: f.int(offer.points.points ?? offer.points.amount) });
  if (offer.gift) return offer.gift.name || offer.gift.sku || "—";
  return "—";
}

function validity(v) {
  if (!v) return "—";
  if (v.days) return t("offers.valid_days", { n: v.days });
  if (v.ends_at) return t("offers.valid_until", { date: f.date(v.ends_at) });
  return "—";
}

async function offersCard(ctx) {
  const answer = await get("/v1/offers", { query: { brand_id: ctx.brand }, signal: ctx.signal });
  if (!answer.offers.length) return empty(t("offers.none"));
  return table(
    [
      [t("offers.offer"), (o) => [h("strong", {}, o.offer.name), h("div", { class: "muted small" }, code(o.offer.offer_id))]],
      [t("offers.kind"), (o) => label("offerkind.", kindOf(o.offer))],
      [t("offers.benefit"), (o) => benefit(o.offer)],
      [t("offers.validity"), (o) => validity(o.offer.validity)],
      [t("offers.status"), (o) => badge(label("offerstatus.", o.status), o.status === "active" ? "good" : null)],
      [
        t("offers.issued"),
        (o) => (o.offer.stock ? t("offers.issued_of", { n: f.int(o.issued), stock: f.int(o.offer.stock) }) : f.int(o.issued)),
        { numeric: true },
      ],
      [t("offers.per_person"), (o) => (o.offer.per_person_limit ? f.int(o.offer.per_person_limit) : "—"), { numeric: true }],
      [t("offers.pools"), (o) => (o.offer.budget_pools.length ? o.offer.budget_pools.join(", ") : "—")],
      [
        t("offers.campaign"),
        (o) => (o.offer.campaign_id ? h("a", { href: `#/campaigns/${encodeURIComponent(o.offer.campaign_id)}` }, o.offer.campaign_id) : "—"),
      ],
    ],
    answer.offers,
    { caption: t("offers.catalog") },
  );
}

async function poolsCard(ctx) {
  const answer = await get("/v1/budgets", { query: { brand_id: ctx.brand }, signal: ctx.signal });
  if (!answer.pools.length) return empty(t("budgets.none"));
  return [
    bars(
      answer.pools.map((b) => ({ ...poolRow(b), value: b.reserved_minor + b.committed_minor })),
      { max: Math.max(...answer.pools.map((b) => b.pool.total_minor)), caption: t("budgets.title") },
    ),
    table(
      [
        [t("budgets.pool"), (b) => [h("strong", {}, b.pool.pool_id), b.pool.description ? h("div", { class: "muted small" }, b.pool.description) : null]],
        [t("budgets.form"), (b) => (b.pool.form ? label("form.", b.pool.form) : "—")],
        [t("budgets.total"), (b) => f.money(b.pool.total_minor, b.pool.currency), { numeric: true }],
        [t("budgets.reserved"), (b) => f.money(b.reserved_minor, b.pool.currency), { numeric: true }],
        [t("budgets.committed"), (b) => f.money(b.committed_minor, b.pool.currency), { numeric: true }],
        [t("budgets.available"), (b) => f.money(b.available_minor, b.pool.currency), { numeric: true }],
        [t("budgets.for"), (b) => [b.pool.campaign_id ? h("a", { href: `#/campaigns/${encodeURIComponent(b.pool.campaign_id)}` }, b.pool.campaign_id) : null, b.pool.store_id ? ` ${b.pool.store_id}` : null, !b.pool.campaign_id && !b.pool.store_id ? "—" : null]],
      ],
      answer.pools,
      { caption: t("budgets.title") },
    ),
  ];
}

export async function render(ctx) {
  ctx.title(t("nav.offers"));
  ctx.main.append(pageHeader(t("offers.title"), t("offers.lead")));
  if (!ctx.brand) {
    ctx.main.append(needBrand());
    return;
  }
  const offers = card(t("offers.catalog"), { wide: true, id: "offers" });
  const pools = card(t("budgets.title"), { wide: true, id: "budgets" });
  ctx.main.append(h("div", { class: "cards" }, pools.el, offers.el));
  await Promise.all([fill(offers.body, () => offersCard(ctx)), fill(pools.body, () => poolsCard(ctx))]);
}
