"""Checking an audience definition against the tag catalog and the other audiences.

Every error names the field path in the definition (`include.all[1].in`) and says what is wrong: unparseable shapes
(pydantic, mapped to the same paths), unknown tags, tests that do not fit the value type of what they test, unknown
or circular audience references, and dynamic audiences that reference static ones.

A reference `{audience: x, eq: true}` means "is a member of x". A dynamic audience is kept current by tag_update as
the tag `audience:<id>`; a static audience exists only as frozen snapshots, so nothing keeps a per-person membership
of it that a dynamic audience could read: dynamic audiences may reference dynamic audiences only. Static audiences
may reference either kind; at size, preview and export time every referenced condition is evaluated on the spot.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cdp.audiences.models import AudienceDefinition, Reads, ValidationIssue, ValidationReport
from cdp.errors import InvalidInputError
from cdp.tags.catalog import TagCatalog, field_path
from cdp.tags.records import ATTRIBUTES
from cdp.tags.rules import MAX_DEPTH, AllOf, AnyOf, Compare, Condition, NotOf, check_operand_types


class AudienceInvalidError(InvalidInputError):
    """The definition is wrong; `errors` lists every problem with its field path (422 at the edge)."""

    def __init__(self, errors: list[ValidationIssue]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.field}: {first.message}{more}", location=first.field)


def walk(condition: Condition, path: str, depth: int = 0) -> Iterator[tuple[Compare, str, int]]:
    """Every comparison with its field path and depth."""
    if isinstance(condition, AllOf):
        for i, c in enumerate(condition.all):
            yield from walk(c, f"{path}.all[{i}]", depth + 1)
    elif isinstance(condition, AnyOf):
        for i, c in enumerate(condition.any):
            yield from walk(c, f"{path}.any[{i}]", depth + 1)
    elif isinstance(condition, NotOf):
        yield from walk(condition.not_, f"{path}.not", depth + 1)
    else:
        yield condition, path, depth


def parts(definition: AudienceDefinition) -> list[tuple[str, Condition]]:
    """The definition's own condition trees with their paths (consent is added by `condition()`)."""
    return [("include", definition.include), *((f"exclude[{i}]", c) for i, c in enumerate(definition.exclude))]


def references(definition: AudienceDefinition) -> list[str]:
    return [c.audience for _, tree in parts(definition) for c, _, _ in walk(tree, "") if c.audience is not None]


def parse_definition(raw: Any) -> AudienceDefinition:
    """The definition, or AudienceInvalidError with a path per pydantic error."""
    if isinstance(raw, AudienceDefinition):
        return raw
    if not isinstance(raw, dict):
        raise AudienceInvalidError([ValidationIssue(field="(document)", message="expected a JSON object")])
    try:
        return AudienceDefinition.model_validate(raw)
    except ValidationError as exc:
        raise AudienceInvalidError(pydantic_issues(exc)) from exc


_NUMBER_MESSAGES = frozenset({"Input should be a valid integer", "Input should be a valid number"})


def pydantic_issues(exc: ValidationError, prefix: str = "") -> list[ValidationIssue]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in exc.errors():
        path = f"{prefix}{field_path(e['loc'])}" or "(document)"
        message = e["msg"].removeprefix("Value error, ")
        if message in _NUMBER_MESSAGES:  # an int-or-float operand reports both: one message says it
            message = "Input should be a number"
        if (path, message) not in seen:  # a union reports one failure per member: keep each once
            seen.add((path, message))
            out.append(ValidationIssue(field=path, message=message))
    return out


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Checked:
    definition: AudienceDefinition
    report: ValidationReport


def check(definition: AudienceDefinition, catalog: TagCatalog, others: Mapping[str, AudienceDefinition]) -> Checked:
    """Semantic checks; `others`: the stored audiences (the definition's own earlier version is ignored)."""
    known = {k: v for k, v in others.items() if k != definition.id}
    errors: list[ValidationIssue] = []
    for root, tree in parts(definition):
        for compare, path, depth in walk(tree, root):
            if depth > MAX_DEPTH:
                errors.append(ValidationIssue(field=path, message=f"nested deeper than {MAX_DEPTH} levels"))
                continue
            errors.extend(_check_compare(definition, compare, path, catalog, known))
    errors.extend(_check_cycle(definition, known))
    errors.extend(_check_dependents(definition, known))
    reads, notes, freshness = _reads(definition, catalog, known)
    report = ValidationReport(
        valid=not errors,
        audience_id=definition.id,
        kind=definition.kind,
        errors=errors,
        reads=reads,
        freshness=freshness if not errors else None,
        notes=notes if not errors else [],
        catalog_version=catalog.version,
    )
    return Checked(definition, report)


def _check_compare(
    definition: AudienceDefinition,
    compare: Compare,
    path: str,
    catalog: TagCatalog,
    known: Mapping[str, AudienceDefinition],
) -> list[ValidationIssue]:
    if compare.tag is not None and compare.tag not in catalog.definitions:
        hint = _suggest(compare.tag, list(catalog.definitions))
        return [ValidationIssue(field=f"{path}.tag", message=f"unknown tag {compare.tag!r}{hint}")]
    if compare.audience is not None:
        ref = compare.audience
        if ref == definition.id:
            return [ValidationIssue(field=f"{path}.audience", message=f"audience {ref!r} references itself")]
        if ref not in known:
            hint = _suggest(ref, list(known))
            return [ValidationIssue(field=f"{path}.audience", message=f"unknown audience {ref!r}{hint}")]
        other_brand = known[ref].brand_id
        if definition.brand_id is not None and other_brand not in (None, definition.brand_id):
            return [
                ValidationIssue(
                    field=f"{path}.audience",
                    message=f"audience {ref!r} holds brand {other_brand}'s customers; this one brand "
                    f"{definition.brand_id}'s",
                )
            ]
        if definition.kind == "dynamic" and known[ref].kind == "static":
            return [
                ValidationIssue(
                    field=f"{path}.audience",
                    message=f"a dynamic audience cannot reference static audience {ref!r}: static members exist only "
                    "in snapshots, not as a membership tag kept current; make it dynamic or copy its condition",
                )
            ]
    subject_type = catalog.value_type(compare.tag) if compare.tag is not None else compare.static_type()
    problem = check_operand_types(compare, subject_type or "string")
    return [ValidationIssue(field=f"{path}.{compare.op}", message=problem)] if problem else []


def _check_cycle(definition: AudienceDefinition, known: Mapping[str, AudienceDefinition]) -> list[ValidationIssue]:
    """A reference chain that comes back to this definition (the others were acyclic when they were stored)."""
    graph = {**known, definition.id: definition}

    def chain_back(node: str, path: list[str]) -> list[str] | None:
        for ref in references(graph[node]):
            if ref == definition.id:
                return [*path, ref]
            if ref in graph and ref not in path:
                found = chain_back(ref, [*path, ref])
                if found:
                    return found
        return None

    for root, tree in parts(definition):
        for compare, path, _ in walk(tree, root):
            ref = compare.audience
            if ref is None or ref == definition.id or ref not in known:
                continue
            found = chain_back(ref, [definition.id, ref])
            if found:
                return [
                    ValidationIssue(
                        field=f"{path}.audience", message=f"audiences reference each other: {' -> '.join(found)}"
                    )
                ]
    return []


def _check_dependents(definition: AudienceDefinition, known: Mapping[str, AudienceDefinition]) -> list[ValidationIssue]:
    readers = [d for d in known.values() if definition.id in references(d)]
    brand = definition.brand_id
    elsewhere = sorted(d.id for d in readers if brand is not None and d.brand_id not in (None, brand))
    if elsewhere:
        return [
            ValidationIssue(
                field="brand_id",
                message=f"audience(s) {', '.join(elsewhere)} of another brand reference {definition.id!r}, so it "
                f"cannot hold only brand {brand}'s customers",
            )
        ]
    if definition.kind != "static":
        return []
    dynamic = sorted(d.id for d in readers if d.kind == "dynamic")
    if not dynamic:
        return []
    return [
        ValidationIssue(
            field="kind",
            message=f"dynamic audience(s) {', '.join(dynamic)} reference {definition.id!r}, so it must stay dynamic",
        )
    ]


def closure(definition: AudienceDefinition, known: Mapping[str, AudienceDefinition]) -> list[AudienceDefinition]:
    """The audiences the definition references, directly or not, each after the ones it references."""
    order: list[AudienceDefinition] = []
    seen: set[str] = {definition.id}

    def visit(d: AudienceDefinition) -> None:
        for ref in references(d):
            if ref in seen or ref not in known:
                continue
            seen.add(ref)
            visit(known[ref])
            order.append(known[ref])

    visit(definition)
    return order


def _reads(
    definition: AudienceDefinition, catalog: TagCatalog, known: Mapping[str, AudienceDefinition]
) -> tuple[Reads, list[str], str]:
    tags: set[str] = set()
    attrs: set[str] = set()
    scores: set[str] = set()
    audiences: set[str] = set()
    events: set[str] = set()
    for d in [definition, *closure(definition, known)]:
        for compare, _, _ in walk(d.condition(), ""):
            if compare.tag is not None:
                tags.add(compare.tag)
            elif compare.attr is not None:
                attrs.add(compare.attr)
            elif compare.score is not None:
                scores.add(compare.score)
            elif compare.audience is not None:
                audiences.add(compare.audience)
            elif compare.event:
                events.update(compare.event)
    notes: list[str] = []
    batch = sorted(t for t in tags if t in catalog.definitions and catalog.definitions[t].freshness == "batch")
    if batch:
        notes.append(f"reads batch tag(s) {', '.join(batch)}: they change with the nightly refresh, not with events")
    if scores:
        notes.append(f"reads model score(s) {', '.join(sorted(scores))}: they change when the scoring run writes them")
    if events:
        notes.append(
            "aggregates events (" + ", ".join(sorted(events)) + "): size and preview read each scanned person's "
            "timeline, which is slower than conditions on tags and attributes"
        )
    unknown_attrs = sorted(a for a in attrs if a not in ATTRIBUTES)  # parse already refuses these; belt and braces
    if unknown_attrs:
        notes.append(f"unknown attribute(s) {', '.join(unknown_attrs)}")
    freshness = "batch" if batch or scores else "real_time"
    reads = Reads(
        tags=sorted(tags),
        attributes=sorted(attrs),
        scores=sorted(scores),
        audiences=sorted(audiences),
        events=sorted(events),
    )
    return reads, notes, freshness


def validate(raw: Any, catalog: TagCatalog, others: Mapping[str, AudienceDefinition]) -> ValidationReport:
    """Validate without raising: the report lists the errors (POST /v1/audiences/validate)."""
    try:
        definition = parse_definition(raw)
    except AudienceInvalidError as exc:
        audience_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        return ValidationReport(
            valid=False, audience_id=audience_id, errors=exc.errors, catalog_version=catalog.version
        )
    return check(definition, catalog, others).report


def checked(raw: Any, catalog: TagCatalog, others: Mapping[str, AudienceDefinition]) -> Checked:
    """The definition and its report, or AudienceInvalidError naming every problem."""
    result = check(parse_definition(raw), catalog, others)
    if not result.report.valid:
        raise AudienceInvalidError(result.report.errors)
    return result
