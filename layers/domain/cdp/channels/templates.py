"""Message templates: Jinja2 in a sandbox (marketers write templates; they must not reach Python internals)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateRuntimeError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from cdp.errors import InvalidInputError
from cdp.profile.models import TRAIT_NAMES


def _present(value: Any) -> Any:
    """Every `{{ ... }}` must print something: a person without a name gets no "None," in their SMS."""
    if value is None or value == "":
        raise TemplateRuntimeError("a variable is empty for this person (give it a default: {{ x or '...' }})")
    return value


# Plain text for SMS, e-mail text part, push and WeChat: no HTML autoescaping.
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_present)
# What a person's profile may not hold: printed bare (no `or`, `default`, `if` around it), it is empty for them.
OPTIONAL_NAMES = frozenset({"traits", "member_level", "points_balance", "family"})


@lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    """Parse once per distinct source (a batch renders the same template hundreds of times)."""
    return _ENV.from_string(source)


# What `cdp.channels.service.template_context` gives a template (a test keeps the two equal).
TEMPLATE_NAMES = frozenset(
    {"person_id", "traits", "member_level", "points_balance", "family", "offer", "campaign_id", "step"}
    | {"preferences_url"}  # the person's preference centre (given when links are tracked)
    | {"predicted"}  # each model's output: {{ predicted.next_product.ranked[0] }}, {{ predicted.clv.p_alive }}
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
    parsed = _ENV.parse(source)
    unknown_traits = sorted(
        {a.attr for a in parsed.find_all(nodes.Getattr) if _path(a.node) == "traits"} - set(TRAIT_NAMES)
    )
    if unknown_traits:
        return f"traits has no {', '.join(unknown_traits)}; a person's traits are {', '.join(TRAIT_NAMES)}"
    bare = sorted(set(_bare_optional(parsed)))
    if bare:
        return (
            f"{', '.join(bare)} may be empty for some persons: give a default ({{{{ {bare[0]} or '...' }}}}) or "
            "put it inside {% if %}"
        )
    return None


def _bare_optional(node: nodes.Node, guarded: bool = False) -> list[str]:
    """The optional profile values printed as they are, outside any `{% if %}`."""
    found: list[str] = []
    if isinstance(node, nodes.If):
        guarded = True
    if isinstance(node, nodes.Output) and not guarded:
        for printed in node.nodes:
            path = _path(printed)
            if path is not None and path.split(".")[0] in OPTIONAL_NAMES:
                found.append(path)
    for child in node.iter_child_nodes():
        found += _bare_optional(child, guarded)
    return found


def _path(expr: nodes.Node) -> str | None:
    """`traits.name` for a bare attribute chain (`Getattr(Name)`), None for anything else (a filter, `or`, ...)."""
    if isinstance(expr, nodes.Name):
        return str(expr.name)
    if isinstance(expr, nodes.Getattr):
        inner = _path(expr.node)
        return f"{inner}.{expr.attr}" if inner is not None else None
    return None


class TemplateRenderError(InvalidInputError):
    """A template could not be rendered for one person (an undefined name, a sandbox violation)."""


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return compile_template(source).render(context).strip()
    except TemplateError as exc:  # SecurityError and UndefinedError are TemplateErrors
        raise TemplateRenderError(f"template render failed: {exc}") from exc
