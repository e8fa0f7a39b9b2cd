"""The shell of the small public pages an end customer opens from a message (the claim page, `cdp.app.claim_page`;
the preference centre, `cdp.app.preference_page`): one mobile HTML page in Chinese and English, its CSS inline and
nothing loaded from elsewhere, every value HTML-escaped, never cached, never framed."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
CONTENT_TYPE = "text/html; charset=utf-8"
Tone = Literal["ready", "done", "sorry"]


@dataclass(frozen=True)
class Page:
    status: int
    html: str


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def sorry(status: int, zh: str, en: str, detail: str) -> Page:
    return page(status, "sorry", zh, en, f'<p class="fine">{esc(detail)}</p>')


def page(status: int, tone: Tone, zh: str, en: str, body: str) -> Page:
    return Page(
        status,
        "<!doctype html>\n"
        '<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1,viewport-fit=cover">'
        '<meta name="robots" content="noindex,nofollow">'
        f"<title>{esc(zh)} · {esc(en)}</title><style>{_CSS}</style></head>"
        f'<body><main class="card {tone}"><h1>{esc(zh)}</h1><p class="en">{esc(en)}</p>{body}</main></body></html>',
    )


_CSS = (
    ":root{color-scheme:light;--red:#d7262b;--ink:#1f1f1f;--muted:#6b6b6b}"
    "*{box-sizing:border-box}"
    "body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px 16px;"
    "background:linear-gradient(160deg,#fff3e6,#ffe1dc);color:var(--ink);"
    "font:16px/1.5 -apple-system,BlinkMacSystemFont,'PingFang SC','Hiragino Sans GB','Microsoft YaHei',"
    "'Helvetica Neue',Arial,sans-serif}"
    ".card{width:100%;max-width:420px;background:#fff;border-radius:20px;padding:28px 22px;text-align:center;"
    "box-shadow:0 10px 30px rgba(160,40,30,.15)}"
    ".card.sorry{border-top:6px solid #9a9a9a}.card.ready,.card.done{border-top:6px solid var(--red)}"
    "h1{margin:0;font-size:24px}.en{margin:4px 0 18px;color:var(--muted);font-size:15px}"
    ".offer{background:linear-gradient(135deg,var(--red),#f0563a);color:#fff;border-radius:14px;padding:18px 14px;"
    "margin:0 0 16px}"
    ".offer .name{margin:0;font-size:18px;font-weight:600}.offer .value{margin:6px 0 0;font-size:15px}"
    ".label{margin:8px 0 2px;color:var(--muted);font-size:13px}"
    ".code{margin:0 0 8px;font:700 24px/1.3 ui-monospace,Menlo,Consolas,monospace;letter-spacing:2px;"
    "word-break:break-all}"
    ".fine{margin:8px 0 0;color:var(--muted);font-size:13px}"
    "form{margin:18px 0 0}"
    "button{width:100%;border:0;border-radius:999px;padding:14px;font-size:17px;font-weight:600;color:#fff;"
    "background:var(--red);cursor:pointer}"
    "button:active{opacity:.85}button.quiet{margin-top:10px;background:#fff;color:var(--muted);"
    "border:1px solid #ccc;font-size:15px;font-weight:400}"
    "table.choices{width:100%;border-collapse:collapse;margin:0 0 8px;text-align:left;font-size:15px}"
    ".choices th,.choices td{padding:10px 4px;border-bottom:1px solid #eee}"
    ".choices th{color:var(--muted);font-size:13px;font-weight:400}"
    ".choices td.box{text-align:center;width:26%}.choices th.box{text-align:center}"
    ".choices input{width:22px;height:22px;accent-color:var(--red)}"
    ".choices tr.from td{font-weight:600}"
)
