"""The Glue catalog of the warehouse reads exactly what the export writes: each table's columns and types as the
DuckDB writer's Parquet files hold them (read back from real files), its partition keys, and partition projection
over the same key layout the export uses, so Athena finds every new partition without a crawler."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp import topology
from cdp.ingest.events import parse_event
from cdp.org import LoyaltyPolicy
from cdp.profile.models import ModelScore, Profile, TagValue, fold_event
from cdp.warehouse.parquet import DuckDbTableWriter, parquet_schema
from cdp.warehouse.ports import Partition
from cdp.warehouse.rows import event_row, profile_row, tag_rows
from cdp.warehouse.schema import EVENTS, PROFILES, TABLES, TAGS, WarehouseTable, brand_prefix, day_prefix
from tests.infra.conftest import Synth, function_by_handler

pytestmark = pytest.mark.xdist_group("cdk")

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "canonical"
AT = datetime(2026, 12, 7, tzinfo=UTC)
BRAND = "demo-brand"
_SCALARS = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "timestamp",
}


def _split(fields: str) -> list[str]:
    """Comma-separated at the top level (not inside parentheses)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(fields):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(fields[start:i].strip())
            start = i + 1
    return [*parts, fields[start:].strip()]


def glue_type(duckdb_type: str) -> str:
    """A DuckDB type as DuckDB describes a Parquet column, in Hive/Glue spelling (written here independently of the
    schema module, so a wrong mapping there is caught)."""
    t = duckdb_type.strip()
    if t.endswith("[]"):
        return f"array<{glue_type(t[:-2])}>"
    if t.startswith("STRUCT(") and t.endswith(")"):
        fields = []
        for field in _split(t[len("STRUCT(") : -1]):
            name, _, kind = field.partition(" ")
            fields.append(f"{name.strip(chr(34))}:{glue_type(kind)}")
        return f"struct<{','.join(fields)}>"
    if t.startswith("MAP(") and t.endswith(")"):
        key, value = _split(t[len("MAP(") : -1])
        return f"map<{glue_type(key)},{glue_type(value)}>"
    return _SCALARS[t]


def _written(tmp_path: Path) -> dict[str, Path]:
    """One Parquet file per table, written by the export's writer from every canonical sample."""
    events = [parse_event(p.read_bytes()) for p in sorted(SAMPLES.glob("*.v1.json")) if p.name != "batch.v1.json"]
    keys = sorted({i.key for e in events for i in e.identifiers})
    profile = Profile(person_id="p-1", brand_id=BRAND, created_at=AT, updated_at=AT, identifiers=keys)
    for event in events:
        fold_event(profile, event)
    profile.tags = {"rfm_monetary": TagValue(value=4, since=AT), "lifecycle": TagValue(value="growth", since=AT)}
    profile.scores = {"purchase_propensity": ModelScore(score=0.5, model_version="v1", scored_at=AT)}
    out: dict[str, Path] = {}
    with DuckDbTableWriter(tmp_path) as writer:
        writer.add_person(
            BRAND, profile_row(profile, LoyaltyPolicy(), AT, control_share=0.0), tag_rows(profile, AT), ["anchor"]
        )
        for event in events:
            writer.add_event("anchor", BRAND, AT.date(), event.dedupe_key, event_row(event, None))
        for table in TABLES:
            files, rows = writer.write(
                Partition(table, BRAND, AT.date() if table is EVENTS else None), frozenset(), tmp_path
            )
            assert rows and len(files) == 1, table.name
            out[table.name] = files[0]
    return out


def _glue_table(synth: Synth, name: str) -> dict[str, Any]:
    (table,) = [
        t["Properties"]["TableInput"]
        for t in synth.resources("AWS::Glue::Table").values()
        if t["Properties"]["TableInput"]["Name"] == name
    ]
    return dict(table)


def test_each_glue_table_declares_the_columns_and_types_the_writer_produces(synth: Synth, tmp_path: Path) -> None:
    # Given Parquet files the export's writer wrote, and the synthesized Glue tables
    written = _written(tmp_path)
    for table in TABLES:
        glue = _glue_table(synth, table.name)
        # When the files' schema is read back with DuckDB
        schema = parquet_schema(written[table.name])
        # Then the Glue columns are the file's columns, in order, with the types Athena must read them as
        declared = [(c["Name"], c["Type"]) for c in glue["StorageDescriptor"]["Columns"]]
        assert declared == [(name, glue_type(kind)) for name, kind in schema.items()], table.name
        # And the partition keys are the key layout's, as strings
        assert [(k["Name"], k["Type"]) for k in glue["PartitionKeys"]] == [(k, "string") for k in table.partition_keys]


def _template(glue: dict[str, Any]) -> str:
    """storage.location.template with the bucket reference replaced by BUCKET."""
    value = glue["Parameters"]["storage.location.template"]
    parts = value["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "BUCKET" for p in parts)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_partition_projection_follows_the_exports_key_layout(synth: Synth, table: WarehouseTable) -> None:
    glue = _glue_table(synth, table.name)
    params = glue["Parameters"]
    # Given the table's projection / Then it is on, the brand is injected, Parquet read with Hive's Parquet serde
    assert params["projection.enabled"] == "true" and params["projection.brand_id.type"] == "injected"
    assert params["classification"] == "parquet" and glue["TableType"] == "EXTERNAL_TABLE"
    assert glue["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    # And the location template resolves to the prefixes the export writes
    template = _template(glue)
    expected = {
        PROFILES.name: f"s3://BUCKET/{brand_prefix(PROFILES, BRAND)}",
        TAGS.name: f"s3://BUCKET/{brand_prefix(TAGS, BRAND)}",
        EVENTS.name: f"s3://BUCKET/{day_prefix(BRAND, AT.date())}",
    }[table.name]
    assert template.replace("${brand_id}", BRAND).replace("${dt}", AT.date().isoformat()) == expected
    if table is EVENTS:
        assert (params["projection.dt.type"], params["projection.dt.format"]) == ("date", "yyyy-MM-dd")
        assert params["projection.dt.range"].endswith(",NOW")


def test_the_analytics_api_queries_athena_in_a_workgroup_writing_encrypted_results_under_analytics_results(
    synth: Synth,
) -> None:
    from infra.app import STACK_ID
    from infra.components.warehouse import BYTES_SCANNED_PER_QUERY, database_name

    # Given the stack's one Athena workgroup
    ((workgroup_id, workgroup),) = synth.resources("AWS::Athena::WorkGroup").items()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    # Then its results go under analytics-results/ of the data bucket, SSE-S3, on engine 3, with a scan cap; it does
    # not enforce that location, so each query names its brand's and report's prefix below it
    result = config["ResultConfiguration"]
    _, fn = function_by_handler(synth, topology.ANALYTICS_API.handler)
    env = fn["Properties"]["Environment"]["Variables"]
    data_bucket = env[topology.DATA_BUCKET_ENV]  # {"Ref": the data bucket's id}
    assert result["OutputLocation"] == {
        "Fn::Join": ["", ["s3://", data_bucket, f"/{topology.ANALYTICS_RESULTS_PREFIX}"]]
    }
    assert result["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert config["EnforceWorkGroupConfiguration"] is False
    assert config["BytesScannedCutoffPerQuery"] == BYTES_SCANNED_PER_QUERY
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    # And the analytics function runs its reports on Athena, in that workgroup, over the warehouse's database
    assert env[topology.ANALYTICS_ENGINE_ENV] == "athena"
    assert env[topology.ANALYTICS_WORKGROUP_ENV] == {"Ref": workgroup_id}
    assert env[topology.WAREHOUSE_DATABASE_ENV] == database_name(STACK_ID)
    (database,) = synth.resources("AWS::Glue::Database").values()
    assert database["Properties"]["DatabaseInput"]["Name"] == database_name(STACK_ID)
