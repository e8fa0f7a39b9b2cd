"""The demo's HTML report: one self-contained file (inline SVG charts, no network needed to view it)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and CI
import matplotlib.pyplot as plt
import matplotlib.ticker
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cdp.campaigns.lifecycle import receipts_by_status

TEMPLATES = Path(__file__).parent / "templates"
_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"]


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _bar(labels: list[str], values: list[float], title: str, ylabel: str, percent: bool = False) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    bars = ax.bar(labels, values, color=_COLORS[: len(labels)])
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    for bar, value in zip(bars, values, strict=True):
        text = f"{100 * value:.1f}%" if percent else f"{value:,.0f}" if value >= 10 else f"{value:.3f}"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=9)
    if len(labels) > 4:
        ax.tick_params(axis="x", labelrotation=30)
    return _svg(fig)


def _calibration(bins: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    predicted = [b["mean_predicted"] for b in bins]
    observed = [b["observed_rate"] for b in bins]
    top = max([*predicted, *observed, 0.05]) * 1.1
    ax.plot([0, top], [0, top], linestyle="--", color="#94a3b8", label="perfect")
    ax.plot(predicted, observed, marker="o", color=_COLORS[0], label="model (held-out)")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed response rate")
    ax.set_title("Calibration on held-out persons", fontsize=11)
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _rates_with_intervals(lift: dict[str, Any]) -> str:
    """Treated and held-out conversion with their 95% intervals: a bar without one invites reading noise."""
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    groups = [("treated", lift["treatment"]), ("held out", lift["control"])]
    rates = [g["rate"] or 0.0 for _, g in groups]
    below = [max(0.0, r - (g["low"] or 0.0)) for r, (_, g) in zip(rates, groups, strict=True)]
    above = [max(0.0, (g["high"] or 0.0) - r) for r, (_, g) in zip(rates, groups, strict=True)]
    bars = ax.bar([n for n, _ in groups], rates, color=_COLORS[:2], yerr=[below, above], capsize=8)
    for bar, (_, g) in zip(bars, groups, strict=True):
        label = f"{100 * (g['rate'] or 0):.1f}%\n{g['converted']}/{g['size']}"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom", fontsize=9, color="white")
    ax.set_title("Conversion in the window, with 95% intervals", fontsize=11)
    ax.set_ylabel("converted")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _cohorts(rows: list[dict[str, Any]]) -> str:
    """Retention by first-order month: the share of each cohort buying again N months on (blank: not yet observed)."""
    cohorts = sorted({r["cohort"] for r in rows})
    offsets = sorted({r["month_offset"] for r in rows})
    grid = [[float("nan")] * len(offsets) for _ in cohorts]
    for r in rows:
        if r["observed"]:
            grid[cohorts.index(r["cohort"])][offsets.index(r["month_offset"])] = r["share"]
    fig, ax = plt.subplots(figsize=(6.4, 0.36 * len(cohorts) + 1.2))
    ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i, line in enumerate(grid):
        for j, share in enumerate(line):
            if share == share:  # not NaN
                ax.text(
                    j,
                    i,
                    f"{100 * share:.0f}%",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share > 0.6 else "#1e293b",
                )
    sizes = {r["cohort"]: r["cohort_size"] for r in rows}
    ax.set_yticks(range(len(cohorts)), [f"{c} ({sizes[c]})" for c in cohorts], fontsize=8)
    ax.set_xticks(range(len(offsets)), [str(o) for o in offsets], fontsize=8)
    ax.set_xlabel("months after the first order")
    ax.set_title("Cohort retention: first-order month (customers)", fontsize=11)
    return _svg(fig)


def _repeat(rows: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    ks, shares = [r["orders_at_least"] for r in rows], [r["share"] for r in rows]
    ax.plot(ks, shares, marker="o", color=_COLORS[0])
    for k, share in zip(ks, shares, strict=True):
        ax.annotate(
            f"{100 * share:.0f}%", (k, share), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
        )
    ax.set_xticks(ks)
    ax.set_xlabel("orders (at least)")
    ax.set_ylabel("of the period's new customers")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_ylim(0, 1.08)
    ax.set_title("Repeat purchases", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _funnel(stages: list[tuple[str, int]]) -> str:
    fig, ax = plt.subplots(figsize=(5.6, 0.42 * len(stages) + 0.8))
    labels, values = [n for n, _ in stages][::-1], [v for _, v in stages][::-1]
    bars = ax.barh(labels, values, color=_COLORS[0])
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,}", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=9)
    ax.set_title("From the audience to the orders credited to the campaign", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def funnel_stages(summary: dict[str, Any], receipts: dict[str, int]) -> list[tuple[str, int]]:
    f = summary["funnel"]
    stages = [("eligible", f["eligible"]), ("selected", f["selected"]), ("treated", f["treatment"])]
    stages.append(("messages sent (every step)", sum(step["sent"] for step in f["steps"].values())))
    stages += [(name, receipts[name]) for name in ("delivered", "clicked") if receipts.get(name)]
    stages += [("bought (credited)", f["purchased"]), ("redeemed the coupon", f["offers_redeemed"])]
    return stages


def charts(summary: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    pair = summary["identity"]["pairwise"]
    out["identity"] = _bar(
        ["precision", "recall (all)", "recall (linkable)"],
        [pair["all"]["precision"], pair["all"]["recall"], pair["linkable"]["recall"]],
        "Identity resolution vs ground truth (pairwise)",
        "score",
        percent=True,
    )
    lifecycle = summary["tags"].get("lifecycle", {})
    order = ["introduction", "growth", "mature", "dormant", "churned"]
    out["lifecycle"] = _bar(
        [s for s in order if s in lifecycle],
        [lifecycle[s] for s in order if s in lifecycle],
        "Lifecycle stages",
        "persons",
    )
    segments = summary["tags"].get("rfm_segment", {})
    if segments:
        out["rfm"] = _bar(list(segments), list(segments.values()), "RFM segments", "persons")
    conversion = summary["conversion"]
    run = summary["campaign"].get("summary") or {}
    if run.get("conversion_lift"):
        out["conversion"] = _rates_with_intervals(run["conversion_lift"])
    elif conversion.get("treatment_rate") is not None:
        out["conversion"] = _bar(
            ["treatment", "holdout"],
            [conversion["treatment_rate"], conversion["holdout_rate"] or 0.0],
            "Campaign conversion within the window",
            "converted",
            percent=True,
        )
    if run.get("funnel"):
        out["funnel"] = _funnel(funnel_stages(run, receipts_by_status(summary["campaign"].get("message_status") or {})))
    analytics = summary.get("analytics") or {}
    if analytics.get("cohorts"):
        out["cohorts"] = _cohorts(analytics["cohorts"])
    if analytics.get("repeat"):
        out["repeat"] = _repeat(analytics["repeat"])
    held_out = summary["model"]["held_out"]
    if held_out.get("calibration"):
        out["calibration"] = _calibration(held_out["calibration"])
    return out


def write_report(summary: dict[str, Any], path: Path) -> None:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(s=summary, charts=charts(summary))
    path.write_text(html, encoding="utf-8")
