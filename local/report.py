"""The demo's HTML report: one self-contained file (inline SVG charts, no network needed to view it)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and CI
import matplotlib.pyplot as plt
from jinja2 import Environment, FileSystemLoader, select_autoescape

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
    if conversion.get("treatment_rate") is not None:
        out["conversion"] = _bar(
            ["treatment", "holdout"],
            [conversion["treatment_rate"], conversion["holdout_rate"] or 0.0],
            "Campaign conversion within the window",
            "converted",
            percent=True,
        )
    held_out = summary["model"]["held_out"]
    if held_out.get("calibration"):
        out["calibration"] = _calibration(held_out["calibration"])
    return out


def write_report(summary: dict[str, Any], path: Path) -> None:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(s=summary, charts=charts(summary))
    path.write_text(html, encoding="utf-8")
