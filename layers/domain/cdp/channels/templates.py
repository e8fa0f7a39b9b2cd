"""Message templates: Jinja2 in a sandbox (marketers write templates; they must not reach Python internals)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from cdp.errors import InvalidInputError

# Plain text for SMS, e-mail text part, push and WeChat: no HTML autoescaping.
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    """Parse once per distinct source (a batch renders the same template hundreds of times)."""
    return _ENV.from_string(source)


# What `cdp.channels.service.template_context` gives a template (a test keeps the two equal).
TEMPLATE_NAMES = frozenset(
    {"person_id", "traits", "member_level", "points_balance", "family", "offer", "campaign_id", "step"}
)


def template_problem(source: str, has_offer: bool) -> str | None:
    """Why the template cannot render for anyone (a syntax error, a name the context lacks), else None."""
    try:
        names = meta.find_undeclared_variables(_ENV.parse(source))
    except TemplateSyntaxError as exc:
        return f"not a valid template: {exc.message} (line {exc.lineno})"
    unknown = sorted(names - TEMPLATE_NAMES)
    if unknown:
        return f"unknown name(s) {', '.join(unknown)}; a template may use {', '.join(sorted(TEMPLATE_NAMES))}"
    if "offer" in names and not has_offer:
        return "the template uses offer but the step has none"
    return None


class TemplateRenderError(InvalidInputError):
    """A template could not be rendered for one person (an undefined name, a sandbox violation)."""


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return compile_template(source).render(context).strip()
    except TemplateError as exc:  # SecurityError and UndefinedError are TemplateErrors
        raise TemplateRenderError(f"template render failed: {exc}") from exc
