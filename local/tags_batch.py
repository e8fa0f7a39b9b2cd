"""Batch tags over Parquet with DuckDB: the local stand-in for "DynamoDB export to S3 + Athena" (same SQL).

- `export_profiles(reader, out_dir)` writes `profiles.parquet` and `events.parquet` from the profile store (scan +
  timelines -> `cdp.tags.records.person_record`), in the shape `cdp.tags.sql` reads;
- `BatchTagEngine(data_dir)` evaluates catalog tags over an export (`evaluate_tags`, written to `tags.parquet` with a
  `tags.meta.json` beside it) and sizes, samples and lists the members of conditions. Conditions read the
  materialized tags when `tags.parquet` holds every tag they read at the same instant and catalog version (audience
  sizes in well under a second), otherwise they compute the tags from the events on the spot.

`load_records(con, records)` builds the same two tables in a DuckDB connection from in-memory `PersonRecord`s (the
property test compares both evaluators on them); `read_person_records` goes the other way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from cdp.errors import InvalidInputError
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader, TimelineEntry
from cdp.tags.catalog import TagCatalog
from cdp.tags.evaluate import audience_tag
from cdp.tags.records import (
    EVENT_FIELDS,
    PROFILE_COLUMNS,
    EventRecord,
    PersonRecord,
    epoch,
    person_record,
)
from cdp.tags.rules import Condition
from cdp.tags.sql import (
    EVENT_SQL_TYPES,
    PROFILE_SQL_TYPES,
    SqlCompiler,
    audience_column,
    quote_ident,
    score_column,
    string_literal,
)

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

PROFILES_FILE = "profiles.parquet"
EVENTS_FILE = "events.parquet"
TAGS_FILE = "tags.parquet"
_AUDIENCE_PREFIX = audience_tag("")
_CHUNK = 20_000

Progress = Callable[[int], None]


class BatchDataError(InvalidInputError):
    """The export directory is missing a file or holds the wrong columns."""


# ---- records -> tables --------------------------------------------------------------------------------------


class _Columns:
    """Rows gathered column by column, then handed to DuckDB as numpy object arrays (no pandas needed)."""

    def __init__(self, types: Mapping[str, str]) -> None:
        self.types = dict(types)
        self.values: dict[str, list[Any]] = {name: [] for name in types}
        self.rows = 0

    def add_column(self, name: str, sql_type: str) -> None:
        if name not in self.types:
            self.types[name] = sql_type
            self.values[name] = [None] * self.rows

    def append(self, row: Mapping[str, Any]) -> None:
        for name, values in self.values.items():
            values.append(row.get(name))
        self.rows += 1

    def insert_into(self, con: DuckDBPyConnection, table: str) -> None:
        if not self.rows:
            return
        chunk = {name: np.array(values, dtype=object) for name, values in self.values.items()}
        casts = ", ".join(f"CAST({quote_ident(n)} AS {t}) AS {quote_ident(n)}" for n, t in self.types.items())
        con.register("_chunk", chunk)
        try:
            con.execute(f"INSERT INTO {quote_ident(table)} BY NAME SELECT {casts} FROM _chunk")  # noqa: S608
        finally:
            con.unregister("_chunk")
        self.values = {name: [] for name in self.types}
        self.rows = 0


def _create(con: DuckDBPyConnection, table: str, types: Mapping[str, str]) -> None:
    columns = ", ".join(f"{quote_ident(n)} {t}" for n, t in types.items())
    con.execute(f"CREATE OR REPLACE TABLE {quote_ident(table)} ({columns})")


def _ensure_column(con: DuckDBPyConnection, table: str, name: str, sql_type: str) -> None:
    con.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN IF NOT EXISTS {quote_ident(name)} {sql_type}")


def profile_row(record: PersonRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"person_id": record.person_id}
    row |= {c: record.columns.get(c) for c in PROFILE_COLUMNS}
    row |= {score_column(m): s for m, s in record.scores.items()}
    row |= {
        audience_column(name.removeprefix(_AUDIENCE_PREFIX)): bool(value)
        for name, value in record.tags.items()
        if name.startswith(_AUDIENCE_PREFIX)
    }
    return row


def event_row(person_id: str, e: EventRecord) -> dict[str, Any]:
    at = datetime.fromtimestamp(e.ts, UTC)
    row: dict[str, Any] = {
        "person_id": person_id,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "ts": e.ts,
        "year": at.year,
        "month": at.month,
    }
    return row | {f: e.get(f) for f in EVENT_FIELDS}


class _TableWriter:
    """Streams person records into DuckDB tables `profiles` and `events` in chunks (score and audience columns are
    added as they are first seen)."""

    def __init__(self, con: DuckDBPyConnection) -> None:
        self.con = con
        _create(con, "profiles", PROFILE_SQL_TYPES)
        _create(con, "events", EVENT_SQL_TYPES)
        self._profiles = _Columns(PROFILE_SQL_TYPES)
        self._events = _Columns(EVENT_SQL_TYPES)
        self.persons = 0
        self.event_rows = 0

    def add(self, record: PersonRecord) -> None:
        row = profile_row(record)
        for name in row:
            if name not in self._profiles.types:
                sql_type = "DOUBLE" if name.startswith("score__") else "BOOLEAN"
                _ensure_column(self.con, "profiles", name, sql_type)
                self._profiles.add_column(name, sql_type)
        self._profiles.append(row)
        for e in record.events:
            self._events.append(event_row(record.person_id, e))
        self.persons += 1
        self.event_rows += len(record.events)
        if self._events.rows >= _CHUNK or self._profiles.rows >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        self._profiles.insert_into(self.con, "profiles")
        self._events.insert_into(self.con, "events")


def load_records(
    con: DuckDBPyConnection, records: Iterable[PersonRecord], columns: Mapping[str, str] | None = None
) -> None:
    """Tables `profiles` and `events` in `con` holding exactly these records; `columns` (name -> SQL type, e.g.
    `SqlCompiler.required_profile_columns()`) adds score or audience columns no record has."""
    writer = _TableWriter(con)
    for record in records:
        writer.add(record)
    writer.flush()
    for name, sql_type in (columns or {}).items():
        _ensure_column(con, "profiles", name, sql_type)


# ---- export ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    persons: int
    events: int
    seconds: float


def export_profiles(
    reader: ProfileReader, out_dir: Path, shards: int = 1, progress: Progress | None = None
) -> ExportSummary:
    """Write profiles.parquet and events.parquet for every surviving person of the store (`shards` scans one after
    the other; 1 reads every timeline with the scan, see `ProfileReader.scan_with_timelines`)."""
    histories = (history for shard in range(shards) for history in reader.scan_with_timelines(shard, shards))
    return export_histories(histories, out_dir, progress)


def export_histories(
    histories: Iterable[tuple[Profile, Sequence[TimelineEntry]]], out_dir: Path, progress: Progress | None = None
) -> ExportSummary:
    """Write profiles.parquet and events.parquet for these persons (profiles with their timelines, already read)."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        writer = _TableWriter(con)
        for profile, timeline in histories:
            writer.add(person_record(profile, [entry.event for entry in timeline]))
            if progress is not None:
                progress(writer.persons)
        writer.flush()
        _copy(con, "SELECT * FROM profiles ORDER BY person_id", out_dir / PROFILES_FILE)
        _copy(con, "SELECT * FROM events ORDER BY person_id, ts, event_id", out_dir / EVENTS_FILE)
        return ExportSummary(out_dir, writer.persons, writer.event_rows, time.perf_counter() - started)
    finally:
        con.close()


def _copy(con: DuckDBPyConnection, query: str, path: Path) -> None:
    con.execute(f"COPY ({query}) TO {string_literal(str(path))} (FORMAT PARQUET, COMPRESSION ZSTD)")


def read_person_records(data_dir: Path, person_ids: Sequence[str] | None = None) -> list[PersonRecord]:
    """Person records back from an export (all of them, or the ones named), events sorted by (ts, event_id)."""
    con = duckdb.connect()
    try:
        profiles = _parquet(data_dir / PROFILES_FILE)
        events = _parquet(data_dir / EVENTS_FILE)
        chosen = ""
        if person_ids is not None:
            con.execute("CREATE TEMP TABLE chosen (person_id VARCHAR)")
            con.executemany("INSERT INTO chosen VALUES (?)", [[p] for p in person_ids])
            chosen = " WHERE person_id IN (SELECT person_id FROM chosen)"
        cursor = con.execute(f"SELECT * FROM {profiles}{chosen} ORDER BY person_id")  # noqa: S608
        names = [d[0] for d in cursor.description or []]
        records: dict[str, PersonRecord] = {}
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            records[row["person_id"]] = PersonRecord(
                person_id=row["person_id"],
                columns={c: row.get(c) for c in PROFILE_COLUMNS},
                tags={
                    audience_tag(n.removeprefix("tag__audience__")): True
                    for n, v in row.items()
                    if n.startswith("tag__audience__") and v
                },
                scores={
                    n.removeprefix("score__"): v for n, v in row.items() if n.startswith("score__") and v is not None
                },
            )
        fields = ", ".join(quote_ident(f) for f in EVENT_FIELDS)
        cursor = con.execute(
            f"SELECT person_id, event_id, event_type, ts, {fields} FROM {events}{chosen} "  # noqa: S608
            "ORDER BY person_id, ts, event_id"
        )
        for person_id, event_id, event_type, ts, *rest in cursor.fetchall():
            if person_id in records:
                by_field: dict[str, Any] = dict(zip(EVENT_FIELDS, rest, strict=True))
                records[person_id].events.append(EventRecord(event_id, event_type, ts, **by_field))
        return list(records.values())
    finally:
        con.close()


def _parquet(path: Path) -> str:
    if not path.exists():
        raise BatchDataError(f"{path} does not exist (export the profile store first)", str(path))
    return f"read_parquet({string_literal(str(path))})"


# ---- the engine -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagBatchResult:
    path: Path
    tags: list[str]
    persons: int
    seconds: float
    asof: int
    catalog_version: str
    sql: str = field(repr=False)


@dataclass(frozen=True)
class _Materialized:
    path: Path
    asof: int
    catalog_version: str
    tags: frozenset[str]


class BatchTagEngine:
    """DuckDB over an export directory (profiles.parquet, events.parquet; tags.parquet once evaluated)."""

    def __init__(self, data_dir: Path, threads: int | None = None) -> None:
        self.data_dir = data_dir
        self._profiles_sql = _parquet(data_dir / PROFILES_FILE)
        self._events_sql = _parquet(data_dir / EVENTS_FILE)
        self.con = duckdb.connect(config={"threads": threads} if threads else {})
        self.con.execute("SET enable_progress_bar = false")  # the CLI shows its own status
        self.con.execute(f"CREATE VIEW events AS SELECT * FROM {self._events_sql}")  # noqa: S608
        schema = self.con.execute(f"DESCRIBE SELECT * FROM {self._profiles_sql}").fetchall()  # noqa: S608
        self._profile_columns = {row[0] for row in schema}
        missing = [c for c in PROFILE_SQL_TYPES if c not in self._profile_columns]
        if missing:
            raise BatchDataError(f"{data_dir / PROFILES_FILE} lacks column(s) {', '.join(missing)}", "profiles")
        self._materialized: _Materialized | None = _read_meta(data_dir / TAGS_FILE)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> BatchTagEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _profiles_view(self, required: Mapping[str, str]) -> None:
        """`profiles` with the score and audience columns the query reads (NULL when the export has none)."""
        extra = "".join(
            f", CAST(NULL AS {t}) AS {quote_ident(c)}" for c, t in required.items() if c not in self._profile_columns
        )
        self.con.execute(f"CREATE OR REPLACE VIEW profiles AS SELECT *{extra} FROM {self._profiles_sql}")  # noqa: S608

    # ---- tags ------------------------------------------------------------------------------------------------

    def evaluate_tags(
        self,
        catalog: TagCatalog,
        asof: int | datetime,
        names: Sequence[str] | None = None,
        out: Path | None = None,
    ) -> TagBatchResult:
        """Every person's tags at `asof`, written to `out` (default data_dir/tags.parquet)."""
        compiler = SqlCompiler(catalog, asof)
        path = out or self.data_dir / TAGS_FILE
        sql = compiler.tags_query(names)
        self._profiles_view(compiler.required_profile_columns(names=names))
        started = time.perf_counter()
        _copy(self.con, sql, path)
        seconds = time.perf_counter() - started
        tags = [n for n in catalog.order if names is None or n in set(names)]
        persons = self.con.execute(f"SELECT count(*) FROM read_parquet({string_literal(str(path))})").fetchone()  # noqa: S608
        meta = _Materialized(path, compiler.asof, catalog.version, frozenset(tags))
        _write_meta(meta)
        if path.parent == self.data_dir:
            self._materialized = meta
        return TagBatchResult(
            path, tags, int(persons[0]) if persons else 0, seconds, compiler.asof, catalog.version, sql
        )

    def value_counts(self, result: TagBatchResult, tag: str, limit: int = 10) -> list[tuple[Any, int]]:
        """The most common values of one tag in a result (NULL included), most common first."""
        if tag not in result.tags:
            raise InvalidInputError(f"tag {tag!r} is not in the result", "tag")
        column = quote_ident(tag)
        rows = self.con.execute(
            f"SELECT {column}, count(*) AS n FROM read_parquet({string_literal(str(result.path))}) "  # noqa: S608
            f"GROUP BY 1 ORDER BY n DESC, 1 NULLS FIRST LIMIT {int(limit)}"
        ).fetchall()
        return [(value, int(n)) for value, n in rows]

    def tag_rows(self, result: TagBatchResult, person_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """person_id -> {tag: value} for the persons named."""
        self.con.execute("CREATE OR REPLACE TEMP TABLE _chosen (person_id VARCHAR)")
        self.con.executemany("INSERT INTO _chosen VALUES (?)", [[p] for p in person_ids])
        cursor = self.con.execute(
            f"SELECT * FROM read_parquet({string_literal(str(result.path))}) "  # noqa: S608
            "WHERE person_id IN (SELECT person_id FROM _chosen)"
        )
        names = [d[0] for d in cursor.description or []]
        out: dict[str, dict[str, Any]] = {}
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            out[row.pop("person_id")] = row
        return out

    # ---- conditions ------------------------------------------------------------------------------------------

    def uses_materialized(self, catalog: TagCatalog, asof: int | datetime, condition: Condition) -> bool:
        """Whether a condition is answered from tags.parquet (same instant and catalog, every tag it reads)."""
        from cdp.tags.rules import walk_refs

        m = self._materialized
        at = asof if isinstance(asof, int) else epoch(asof)
        if m is None or m.asof != at or m.catalog_version != catalog.version or not m.path.exists():
            return False
        return {c.tag for c, _ in walk_refs(condition) if c.tag is not None} <= m.tags

    def _prepare(
        self, catalog: TagCatalog, asof: int | datetime, condition: Condition, audiences: Mapping[str, Condition]
    ) -> tuple[SqlCompiler, bool]:
        compiler = SqlCompiler(catalog, asof)
        materialized = not audiences and self.uses_materialized(catalog, asof, condition)
        if materialized and self._materialized is not None:
            path = string_literal(str(self._materialized.path))
            self.con.execute(f"CREATE OR REPLACE VIEW tags AS SELECT * FROM read_parquet({path})")  # noqa: S608
        self._profiles_view(compiler.required_profile_columns(condition=condition, audiences=audiences))
        return compiler, materialized

    def count(
        self,
        catalog: TagCatalog,
        asof: int | datetime,
        condition: Condition,
        audiences: Mapping[str, Condition] | None = None,
    ) -> int:
        compiler, materialized = self._prepare(catalog, asof, condition, audiences or {})
        row = self.con.execute(compiler.count_query(condition, audiences, materialized_tags=materialized)).fetchone()
        return int(row[0]) if row else 0

    def sample(
        self,
        catalog: TagCatalog,
        asof: int | datetime,
        condition: Condition,
        n: int = 20,
        audiences: Mapping[str, Condition] | None = None,
    ) -> list[str]:
        compiler, materialized = self._prepare(catalog, asof, condition, audiences or {})
        sql = compiler.sample_query(condition, n, audiences, materialized_tags=materialized)
        return [row[0] for row in self.con.execute(sql).fetchall()]

    def members(
        self,
        catalog: TagCatalog,
        asof: int | datetime,
        condition: Condition,
        audiences: Mapping[str, Condition] | None = None,
    ) -> Iterator[str]:
        """Every member's person id, streamed in batches."""
        compiler, materialized = self._prepare(catalog, asof, condition, audiences or {})
        cursor = self.con.execute(compiler.condition_query(condition, audiences, materialized_tags=materialized))
        while True:
            rows = cursor.fetchmany(10_000)
            if not rows:
                return
            for row in rows:
                yield row[0]


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".meta.json")


def _write_meta(m: _Materialized) -> None:
    document = {"asof": m.asof, "catalog_version": m.catalog_version, "tags": sorted(m.tags)}
    _meta_path(m.path).write_text(json.dumps(document, indent=2) + "\n")


def _read_meta(path: Path) -> _Materialized | None:
    meta = _meta_path(path)
    if not path.exists() or not meta.exists():
        return None
    try:
        document = json.loads(meta.read_text())
        return _Materialized(path, int(document["asof"]), str(document["catalog_version"]), frozenset(document["tags"]))
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: compute from the events instead
