"""The tag catalog as code: versioned YAML or JSON definitions, validated into one typed catalog.

Each file holds `{version: N, tags: [...]}`. Errors name the file and the field path (`tags[3].rule.when.all[0].gte`),
including the checks that need the whole catalog: unknown or circular tag references, and tests that do not fit the
type of what they test. The bundled catalog ships in the domain layer; a brand's own is read from S3 (same format).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdp.errors import InvalidInputError
from cdp.shared.ports import ObjectStore
from cdp.tags.records import ATTRIBUTES, SOURCE_EVENT_TYPE, ValueType
from cdp.tags.rules import MAX_DEPTH, NAME_PATTERN, TagRule, check_operand_types, rule_refs, scalar_type, walk_refs

BUNDLED_CATALOG_DIR = Path(__file__).parent / "catalog"
IDENTITY_CHANGED = "identity_changed"  # a merge or split: every tag of the person is recomputed

Category = Literal["basic", "behavior", "preference", "scene", "value", "lifecycle", "timing", "predictive"]


class TagDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1, max_length=500)
    category: Category
    kind: Literal["fact", "rule", "predictive"] = Field(
        description="fact: copies one attribute; rule: conditions and aggregates; predictive: reads a model score"
    )
    dynamic: bool = Field(default=True, description="false: set once and kept (until valid_days lapse)")
    valid_days: int | None = Field(default=None, ge=1, le=3650, description="a static tag lapses this long after set")
    freshness: Literal["real_time", "batch"] = Field(
        description="real_time: recomputed when an event it reads arrives; batch: by the nightly refresh"
    )
    owner: str = Field(min_length=1, max_length=100)
    emits: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_.]{0,63}$", description="event published on every value change"
    )
    rule: TagRule

    @model_validator(mode="after")
    def _kind_fits_rule(self) -> TagDefinition:
        refs = rule_refs(self.rule)
        if self.kind == "fact" and (self.rule.value is None or self.rule.value.attr is None):
            raise ValueError("a fact tag copies one attribute: rule: {value: {attr: ...}}")
        if self.kind == "predictive" and not any(r.score for r in refs):
            raise ValueError("a predictive tag reads a model score (a test on {score: <model>})")
        if self.valid_days is not None and self.dynamic:
            raise ValueError("valid_days is for static tags (dynamic: false); a dynamic tag follows its rule")
        return self

    @property
    def value_type(self) -> ValueType | None:
        """None when it is a copy of another tag (the catalog resolves it)."""
        if self.rule.when is not None:
            return "bool"
        if self.rule.cases is not None:
            return scalar_type(self.rule.cases[0].value)
        return self.rule.value.static_type() if self.rule.value else None


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    tags: list[TagDefinition] = Field(min_length=1, max_length=1000)


@dataclass(frozen=True)
class DefinitionError:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class CatalogError(InvalidInputError):
    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}", location=f"{first.file}:{first.field}")


def field_path(loc: Iterable[Any]) -> str:
    """A pydantic error location as a field path: `tags[3].rule.when.all[0].gte`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("{", "function-", "tagged-union")):
            out += f".{part}" if out else part
    return out


def _pydantic_errors(file: str, exc: ValidationError, prefix: str = "") -> list[DefinitionError]:
    return [
        DefinitionError(file, f"{prefix}{field_path(e['loc'])}" or "(document)", e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    ]


def parse_document(file: str, text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text) if file.endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError([DefinitionError(file, "(document)", f"not valid {_format(file)}: {exc}")]) from exc
    if not isinstance(data, dict):
        raise CatalogError([DefinitionError(file, "(document)", "expected a mapping with 'version' and 'tags'")])
    return data


def _format(file: str) -> str:
    return "JSON" if file.endswith(".json") else "YAML"


class TagCatalog:
    """Every definition, checked as a whole, in evaluation order (a tag after the tags it reads)."""

    def __init__(self, definitions: Mapping[str, TagDefinition], origins: Mapping[str, tuple[str, str]], version: str):
        self.version = version
        errors = _check(definitions, origins)
        if errors:
            raise CatalogError(errors)
        self.order: list[str] = _topological(definitions)
        self.definitions: dict[str, TagDefinition] = {n: definitions[n] for n in self.order}

    @classmethod
    def from_documents(cls, documents: Mapping[str, str | bytes]) -> TagCatalog:
        """`documents`: file name -> text. Names end in .yaml, .yml or .json."""
        definitions: dict[str, TagDefinition] = {}
        origins: dict[str, tuple[str, str]] = {}
        errors: list[DefinitionError] = []
        versions = []
        for file in sorted(documents):
            try:
                parsed = CatalogFile.model_validate(parse_document(file, documents[file]))
            except CatalogError as exc:
                errors.extend(exc.errors)
                continue
            except ValidationError as exc:
                errors.extend(_pydantic_errors(file, exc))
                continue
            versions.append(f"{Path(file).stem}@{parsed.version}")
            for i, definition in enumerate(parsed.tags):
                if definition.name in definitions:
                    first = origins[definition.name]
                    errors.append(
                        DefinitionError(
                            file, f"tags[{i}].name", f"{definition.name!r} is already defined in {first[0]}"
                        )
                    )
                    continue
                definitions[definition.name] = definition
                origins[definition.name] = (file, f"tags[{i}]")
        if not documents:
            errors.append(DefinitionError("(catalog)", "(document)", "no catalog files"))
        if errors:
            raise CatalogError(errors)
        return cls(definitions, origins, ",".join(versions))

    @classmethod
    def from_directory(cls, directory: Path) -> TagCatalog:
        files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        return cls.from_documents({p.name: p.read_text(encoding="utf-8") for p in files})

    @classmethod
    def from_object_store(cls, store: ObjectStore, prefix: str) -> TagCatalog:
        keys = [k for k in store.list_keys(prefix) if k.endswith((".yaml", ".yml", ".json"))]
        return cls.from_documents({k: store.get_bytes(k) for k in keys})

    def value_type(self, name: str) -> ValueType:
        return _value_type(self.definitions, name, set()) or "string"

    @cached_property
    def triggers(self) -> dict[str, frozenset[str]]:
        """Per tag: the canonical event types that can change it (besides time and identity changes)."""
        out: dict[str, frozenset[str]] = {}
        for name in self.order:
            events: set[str] = set()
            for ref in rule_refs(self.definitions[name].rule):
                if ref.attr is not None:
                    events |= ATTRIBUTES[ref.attr].changed_by
                elif ref.agg is not None:
                    events |= {SOURCE_EVENT_TYPE.get(e, e) for e in ref.event or []}
                elif ref.tag is not None and ref.tag in out:
                    events |= out[ref.tag]
            out[name] = frozenset(events)
        return out

    def affected_by(self, event_type: str, freshness: str = "real_time") -> list[str]:
        """The tags an event of this type can change, in evaluation order, plus the tags that read them."""
        every = event_type == IDENTITY_CHANGED
        return [
            n
            for n in self.order
            if self.definitions[n].freshness == freshness and (every or event_type in self.triggers[n])
        ]


def _value_type(definitions: Mapping[str, TagDefinition], name: str, seen: set[str]) -> ValueType | None:
    d = definitions.get(name)
    if d is None or name in seen:
        return None
    seen.add(name)
    if d.value_type is not None:
        return d.value_type
    source = d.rule.value.tag if d.rule.value else None
    return _value_type(definitions, source, seen) if source else None


def _check(definitions: Mapping[str, TagDefinition], origins: Mapping[str, tuple[str, str]]) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    for name, d in definitions.items():
        file, where = origins[name]

        def error(path: str, message: str) -> None:
            errors.append(DefinitionError(file, f"{where}.rule{path}", message))  # noqa: B023 - used at once

        for label, condition in [("when", d.rule.when)] + [
            (f"cases[{i}].when", c.when) for i, c in enumerate(d.rule.cases or [])
        ]:
            if condition is None:
                continue
            for compare, depth in walk_refs(condition):
                if depth > MAX_DEPTH:
                    error(f".{label}", f"nested deeper than {MAX_DEPTH} levels")
                    break
                if compare.tag is not None and compare.tag not in definitions:
                    error(f".{label}", f"unknown tag {compare.tag!r}")
                    continue
                subject_type = _value_type(definitions, compare.tag, set()) if compare.tag else compare.static_type()
                problem = check_operand_types(compare, subject_type or "string")
                if problem:
                    error(f".{label}", problem)
        if d.rule.value is not None and d.rule.value.tag is not None and d.rule.value.tag not in definitions:
            error(".value", f"unknown tag {d.rule.value.tag!r}")
    if not errors:
        cycle = _find_cycle(definitions)
        if cycle:
            file, where = origins[cycle[0]]
            errors.append(DefinitionError(file, f"{where}.rule", f"tags read each other: {' -> '.join(cycle)}"))
    return errors


def _reads(d: TagDefinition) -> list[str]:
    return [r.tag for r in rule_refs(d.rule) if r.tag is not None]


def _find_cycle(definitions: Mapping[str, TagDefinition]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in _reads(definitions[name]):
            if dep not in definitions:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep] if dep in path else [name, dep]
            if dep not in state:
                found = visit(dep, [*path, dep])
                if found:
                    return found
        state[name] = 2
        return None

    for name in sorted(definitions):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def _topological(definitions: Mapping[str, TagDefinition]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        done.add(name)
        for dep in _reads(definitions[name]):
            visit(dep)
        order.append(name)

    for name in sorted(definitions):
        visit(name)
    return order


def bundled_catalog() -> TagCatalog:
    return TagCatalog.from_directory(BUNDLED_CATALOG_DIR)
