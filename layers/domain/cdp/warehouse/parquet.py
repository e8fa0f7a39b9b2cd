"""The DuckDB adapter of `TableWriter`: rows are staged in DuckDB tables (in chunks, through newline-delimited JSON
read with the schema's column types), events are joined to the persons holding their anchors, and each partition is
written with `COPY ... TO (FORMAT PARQUET)`.

DuckDB ships in the export function's own layer (`infra.layers.WAREHOUSE_LAYER`); its Parquet and JSON readers are
built in, so nothing is downloaded at run time. Everything it spills or writes stays under the run's work directory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from cdp.warehouse.ports import Partition, TableWriter
from cdp.warehouse.rows import Row
from cdp.warehouse.schema import EVENTS, PROFILES, TAGS, WarehouseTable

CHUNK_ROWS = 50_000
FILE_SIZE = "256MB"  # a partition bigger than this is split into part-0, part-1, ...
_STAGED_EVENTS = {"anchor": "VARCHAR", "brand_id": "VARCHAR", "dt": "DATE", "dedupe_key": "VARCHAR"}
_ORDER = {PROFILES.name: "person_id", TAGS.name: "person_id, tag", EVENTS.name: "occurred_at, source, event_id"}


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Staged:
    """One staging table: rows buffered as JSON lines, inserted a chunk at a time."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, types: Mapping[str, str], spool: Path) -> None:
        self.con, self.name, self.types, self.spool = con, name, dict(types), spool
        columns = ", ".join(f"{_ident(n)} {t}" for n, t in self.types.items())
        con.execute(f"CREATE TABLE {_ident(name)} ({columns})")
        self.lines: list[str] = []

    def add(self, row: Mapping[str, Any]) -> None:
        self.lines.append(json.dumps(row, separators=(",", ":")))
        if len(self.lines) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        path = self.spool / f"{self.name}-{uuid.uuid4().hex}.jsonl"
        path.write_text("\n".join(self.lines), encoding="utf-8")
        self.lines = []
        try:
            self.con.execute(
                f"INSERT INTO {_ident(self.name)} BY NAME SELECT * FROM read_json(?, format='newline_delimited', "  # noqa: S608
                "columns=?, maximum_object_size=16777216)",
                [str(path), self.types],
            )
        finally:
            path.unlink(missing_ok=True)


class DuckDbTableWriter(TableWriter):
    def __init__(self, work_dir: Path, memory_limit_mb: int | None = None, threads: int | None = None) -> None:
        self._dir = work_dir / f"duckdb-{uuid.uuid4().hex[:8]}"
        (self._dir / "spill").mkdir(parents=True)
        config: dict[str, Any] = {"temp_directory": str(self._dir / "spill"), "home_directory": str(self._dir)}
        if memory_limit_mb:
            config["memory_limit"] = f"{memory_limit_mb}MB"
        if threads:
            config["threads"] = threads
        self._con = duckdb.connect(config=config)
        self._persons = _Staged(self._con, "persons", {"brand_id": "VARCHAR", **PROFILES.sql_types}, self._dir)
        self._tags = _Staged(self._con, "tags", {"brand_id": "VARCHAR", **TAGS.sql_types}, self._dir)
        self._anchors = _Staged(self._con, "anchors", {"anchor": "VARCHAR", "person_id": "VARCHAR"}, self._dir)
        self._staged = _Staged(self._con, "staged_events", {**_STAGED_EVENTS, **EVENTS.sql_types}, self._dir)
        self._resolved = False
        self._excluded: frozenset[str] | None = None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> DuckDbTableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- staging ------------------------------------------------------------------------------------------

    def add_person(self, brand_id: str, profile_row: Row, tag_rows: list[Row], anchors: Iterable[str]) -> None:
        self._persons.add({"brand_id": brand_id, **profile_row})
        for row in tag_rows:
            self._tags.add({"brand_id": brand_id, **row})
        for anchor in anchors:
            self._anchors.add({"anchor": anchor, "person_id": profile_row["person_id"]})

    def add_event(self, anchor: str, brand_id: str, day: date, dedupe_key: str, row: Row) -> None:
        if self._resolved:
            raise RuntimeError("events are staged before the first write")
        self._staged.add(
            {"anchor": anchor, "brand_id": brand_id, "dt": day.isoformat(), "dedupe_key": dedupe_key, **row}
        )

    def _resolve(self) -> None:
        """Every staged row in, and each event given the person holding its anchor (an event filed under two of one
        person's anchors counts once; one under no current person's anchor is left out)."""
        if self._resolved:
            return
        for staged in (self._persons, self._tags, self._anchors, self._staged):
            staged.flush()
        self._con.execute(
            "CREATE TABLE events AS SELECT e.* REPLACE (a.person_id AS person_id) FROM staged_events e "
            "JOIN anchors a USING (anchor) "
            "QUALIFY row_number() OVER (PARTITION BY a.person_id, e.dedupe_key ORDER BY e.anchor) = 1 "
            "ORDER BY e.brand_id, e.dt, e.occurred_at, e.event_id"
        )
        self._con.execute("DROP TABLE staged_events")
        self._resolved = True

    def event_days(self) -> dict[str, set[date]]:
        self._resolve()
        days: dict[str, set[date]] = {}
        for brand_id, day in self._con.execute("SELECT DISTINCT brand_id, dt FROM events").fetchall():
            days.setdefault(brand_id, set()).add(day)
        return days

    def brands(self) -> set[str]:
        self._resolve()
        return {b for (b,) in self._con.execute("SELECT DISTINCT brand_id FROM persons").fetchall()}

    # ---- writing ------------------------------------------------------------------------------------------

    def _exclude(self, exclude: frozenset[str]) -> str:
        """The condition that leaves out the persons whose id hashes to one in `exclude` (none: no condition)."""
        if exclude != self._excluded:
            self._con.execute("CREATE OR REPLACE TEMP TABLE excluded (person_hash VARCHAR PRIMARY KEY)")
            if exclude:
                self._con.executemany("INSERT INTO excluded VALUES (?)", [[h] for h in sorted(exclude)])
            self._excluded = exclude
        return "sha256(person_id) NOT IN (SELECT person_hash FROM excluded)" if exclude else "true"

    def write(self, partition: Partition, exclude: frozenset[str], out_dir: Path) -> tuple[list[Path], int]:
        self._resolve()
        table = partition.table
        where = f"brand_id = {literal(partition.brand_id)} AND {self._exclude(exclude)}"
        if partition.day is not None:
            where += f" AND dt = DATE {literal(partition.day.isoformat())}"
        source = "persons" if table is PROFILES else table.name
        query = f"SELECT {_columns(table)} FROM {source} WHERE {where} ORDER BY {_ORDER[table.name]}"  # noqa: S608
        return self._copy(query, out_dir)

    def rewrite(self, files: list[Path], exclude: frozenset[str], out_dir: Path) -> tuple[list[Path], int, int]:
        condition = self._exclude(exclude)
        paths = "[" + ", ".join(literal(str(p)) for p in files) + "]"
        (total,) = self._con.execute(f"SELECT count(*) FROM read_parquet({paths})").fetchone() or (0,)  # noqa: S608
        query = f"SELECT * FROM read_parquet({paths}) WHERE {condition} ORDER BY {_ORDER[EVENTS.name]}"  # noqa: S608
        written, kept = self._copy(query, out_dir)
        return written, kept, int(total) - kept

    def _copy(self, query: str, out_dir: Path) -> tuple[list[Path], int]:
        target = out_dir / f"out-{uuid.uuid4().hex}"
        (rows,) = self._con.execute(
            f"COPY ({query}) TO {literal(str(target))} "
            f"(FORMAT PARQUET, COMPRESSION ZSTD, FILE_SIZE_BYTES '{FILE_SIZE}', FILENAME_PATTERN 'part-{{i}}')"
        ).fetchone() or (0,)
        files = sorted(target.glob("part-*.parquet"))
        if not rows:  # no rows: no file (an empty partition is no partition)
            for path in files:
                path.unlink()
            return [], 0
        return files, int(rows)


def _columns(table: WarehouseTable) -> str:
    return ", ".join(_ident(c) for c in table.column_names)


def parquet_schema(path: Path) -> dict[str, str]:
    """Column -> DuckDB type of a Parquet file, as DuckDB reads it back (tests compare it with the Glue tables)."""
    with duckdb.connect() as con:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))})").fetchall()  # noqa: S608
    return {str(name): str(kind) for name, kind, *_ in rows}
