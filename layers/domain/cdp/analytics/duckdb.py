"""The reports with DuckDB: views over warehouse Parquet laid out as in S3 (`WarehouseDuckDb`, which `cdp results`
uses over a local export too), and the `QueryEngine` adapter that copies one brand's files out of the data bucket,
runs the report and writes its rows under the query's prefix before `start` returns.

Layout read (partition keys come from the paths, as text, as the Glue tables declare them):

    {directory}/profiles/brand_id={brand}/part-{n}.parquet
    {directory}/events/brand_id={brand}/dt={YYYY-MM-DD}/part-{n}.parquet

A table with no file is an empty table of the schema's columns, so a brand with nothing exported yet gets empty
reports rather than an error; a column of the schema no file holds yet (files written before it existed) reads as
NULL, as Athena reads it.

DuckDB ships in the warehouse layer (`infra.layers.WAREHOUSE_LAYER`), which only the functions that run it carry:
import this module only where `duckdb` is there (the analytics API imports it when DuckDB is its engine).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import duckdb
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from cdp.analytics.ports import QueryEngine, QueryState
from cdp.analytics.reports import AnalyticsQueryError, EngineName, ReportRequest, ResultTable
from cdp.errors import NotFoundError, StoreError
from cdp.observability import logger
from cdp.shared.aws import client as default_client
from cdp.shared.aws import read_object, write_object
from cdp.warehouse.schema import EVENTS, PROFILES, TABLES, TAGS, WarehouseTable, brand_prefix

Row = TypeVar("Row", bound=BaseModel)
DOWNLOAD_THREADS = 8  # one object per day of events: many small GETs
READ_TABLES = (PROFILES, TAGS, EVENTS)  # what the reports read of a brand


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class WarehouseDuckDb:
    """An in-memory DuckDB with a view per warehouse table over the files under `directory` (only read)."""

    def __init__(self, directory: Path, memory_limit_mb: int | None = None) -> None:
        self.directory = directory
        self._con = duckdb.connect()
        if memory_limit_mb:
            self._con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        for table in TABLES:
            self._con.execute(self._view(table))
            self._add_missing_columns(table)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> WarehouseDuckDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _view(self, table: WarehouseTable) -> str:
        pattern = "/".join(["*"] * len(table.partition_keys)) + "/*.parquet"
        if any((self.directory / table.name).glob(pattern)):
            keys = ", ".join(f"{_literal(k)}: VARCHAR" for k in table.partition_keys)
            files = _literal(str(self.directory / table.name / pattern))
            return (
                f"CREATE VIEW {_ident(table.name)} AS SELECT * FROM read_parquet({files}, hive_partitioning = true, "  # noqa: S608
                f"hive_types = {{{keys}}}, union_by_name = true)"
            )
        columns = [f"{_ident(c.name)} {c.sql}" for c in table.columns]
        columns += [f"{_ident(k)} VARCHAR" for k in table.partition_keys]
        return f"CREATE TABLE {_ident(table.name)} ({', '.join(columns)})"

    def _add_missing_columns(self, table: WarehouseTable) -> None:
        """A column no file has yet (files written before it existed) reads as NULL, as Athena reads a column a
        Parquet file lacks; `union_by_name` already does so when only some files lack it."""
        held = {str(row[0]) for row in self._con.execute(f"DESCRIBE {_ident(table.name)}").fetchall()}
        missing = [c for c in table.columns if c.name not in held]
        if missing:
            nulls = ", ".join(f"CAST(NULL AS {c.sql}) AS {_ident(c.name)}" for c in missing)
            name = _ident(table.name)
            self._con.execute(f"ALTER VIEW {name} RENAME TO {_ident(table.name + '_files')}")
            self._con.execute(f"CREATE VIEW {name} AS SELECT *, {nulls} FROM {_ident(table.name + '_files')}")  # noqa: S608

    def execute(self, sql: str, params: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self._con.execute(sql, params or [])

    def table(self, sql: str) -> ResultTable:
        cursor = self._con.execute(sql)
        columns = tuple(str(d[0]) for d in cursor.description or ())
        return ResultTable(columns, [tuple(row) for row in cursor.fetchall()])

    def rows(self, sql: str, model: type[Row]) -> list[Row]:
        return [model.model_validate(record) for record in self.table(sql).records()]


def rows_key(prefix: str, query_id: str) -> str:
    return f"{prefix}{query_id}.rows.json"


class DuckDbQueryEngine(QueryEngine):
    """Runs each report in the function: fine for a brand whose warehouse files fit `max_bytes`; above it the engine
    refuses and names Athena, which reads them where they are.

    The files are kept between calls of a warm container (`cache_dir`, one brand at a time): a report copies only the
    objects whose ETag changed since the last (the nightly export rewrites a few days), and drops those gone."""

    name: ClassVar[EngineName] = "duckdb"

    def __init__(
        self,
        bucket: str,
        max_bytes: int,
        s3_client: Any = None,
        memory_limit_mb: int | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        cache_dir: Path | None = None,
    ) -> None:
        self._bucket, self._max_bytes, self._memory = bucket, max_bytes, memory_limit_mb
        self._s3 = s3_client or default_client("s3")
        self._new_id = new_id
        self._cache = cache_dir or Path(tempfile.mkdtemp(prefix="analytics-warehouse-"))  # this engine's own
        weakref.finalize(self, shutil.rmtree, self._cache, True)
        self._held: dict[str, str] = {}  # key -> ETag of the copy in the cache
        self._lock = threading.Lock()  # one report at a time uses the cache (the local runtime runs threads)

    def _listed(self, prefix: str) -> list[dict[str, Any]]:
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
            return [o for page in pages for o in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"list s3://{self._bucket}/{prefix} failed: {exc}") from exc

    def _list(self, prefix: str) -> list[tuple[str, int]]:
        return [(o["Key"], int(o["Size"])) for o in self._listed(prefix)]

    def _brand_files(self, brand_id: str) -> dict[str, tuple[int, str]]:
        """The Parquet files the reports read, key -> (size, ETag): the brand's profiles and tags snapshots and its
        events."""
        files = [o for table in READ_TABLES for o in self._listed(brand_prefix(table, brand_id))]
        return {o["Key"]: (int(o["Size"]), str(o.get("ETag", ""))) for o in files if o["Key"].endswith(".parquet")}

    def _download(self, key: str, root: Path) -> None:
        target = root / key.split("/", 1)[1]  # laid out as under warehouse/
        target.parent.mkdir(parents=True, exist_ok=True)
        body = read_object(self._s3, self._bucket, key)
        if body is None:  # replaced by tonight's export since it was listed: the files of one run are read again
            raise StoreError(f"s3://{self._bucket}/{key} went away while the report read the warehouse; retry")
        target.write_bytes(body)

    def _synced(self, brand_id: str, files: dict[str, tuple[int, str]]) -> Path:
        """The cache holding exactly the brand's listed files: changed ones copied again, gone ones removed."""
        prefixes = tuple(brand_prefix(table, brand_id) for table in READ_TABLES)
        if any(not key.startswith(prefixes) for key in self._held):
            shutil.rmtree(self._cache, ignore_errors=True)  # another brand's files: /tmp holds one brand's
            self._held = {}
        for key in set(self._held) - set(files):
            (self._cache / key.split("/", 1)[1]).unlink(missing_ok=True)
            del self._held[key]
        stale = [key for key, (_, etag) in files.items() if not etag or self._held.get(key) != etag]
        try:
            with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
                list(pool.map(lambda key: self._download(key, self._cache), stale))
        except StoreError:
            shutil.rmtree(self._cache, ignore_errors=True)  # half a copy is no copy
            self._held = {}
            raise
        self._held.update({key: files[key][1] for key in stale})
        if stale:
            logger.info("warehouse files copied", brand_id=brand_id, copied=len(stale), held=len(self._held))
        return self._cache

    def start(self, request: ReportRequest, prefix: str) -> str:
        files = self._brand_files(request.brand_id)
        size = sum(size for size, _ in files.values())
        if size > self._max_bytes:
            raise AnalyticsQueryError(
                "warehouse_too_large",
                f"brand {request.brand_id}'s warehouse files are {size / 2**20:.1f} MB, over the "
                f"{self._max_bytes / 2**20:.1f} MB the duckdb engine copies per query: use the athena engine "
                "(ANALYTICS_ENGINE=athena), which reads them where they are",
            )
        query_id = self._new_id()
        with self._lock:
            root = self._synced(request.brand_id, files)
            try:
                with WarehouseDuckDb(root, self._memory) as db:
                    table = db.table(self.query_text(request))
                outcome: dict[str, Any] = {"status": "SUCCEEDED", "columns": table.columns, "rows": table.rows}
            except duckdb.Error as exc:  # answered like a failed Athena query: the poll says why
                logger.exception("report query failed in duckdb", report=request.report, query_id=query_id)
                outcome = {"status": "FAILED", "reason": str(exc)}
        write_object(self._s3, self._bucket, rows_key(prefix, query_id), json.dumps(outcome, default=str).encode())
        return query_id

    def _outcome(self, query_id: str, prefix: str) -> dict[str, Any]:
        key = rows_key(prefix, query_id)
        # listed first: a missing key read without a bucket-wide ListBucket right is a 403, not a 404
        if key not in {k for k, _ in self._list(key)}:
            raise NotFoundError(f"no query {query_id}")
        body = read_object(self._s3, self._bucket, key)
        if body is None:
            raise NotFoundError(f"no query {query_id}")
        outcome: dict[str, Any] = json.loads(body)
        return outcome

    def state(self, query_id: str, prefix: str) -> QueryState:
        outcome = self._outcome(query_id, prefix)
        return QueryState("SUCCEEDED") if outcome["status"] == "SUCCEEDED" else QueryState("FAILED", outcome["reason"])

    def result(self, query_id: str, prefix: str) -> ResultTable:
        outcome = self._outcome(query_id, prefix)
        return ResultTable(tuple(outcome["columns"]), [tuple(row) for row in outcome["rows"]])
