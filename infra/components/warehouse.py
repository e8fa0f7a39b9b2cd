"""The warehouse's Glue catalog: one database, one table per `cdp.warehouse.schema` table (Parquet under warehouse/ in
the data bucket), with partition projection so Athena finds every new partition with no crawler and no MSCK REPAIR:
`brand_id` is injected (a query names its brand: `WHERE brand_id = 'demo-brand'`), `dt` is a day range from
`PROJECTION_FIRST_DAY` to today. The export function is scheduled with the others (`cdp.topology.SCHEDULES`).

And the Athena workgroup the analytics API queries it in (`cdp.analytics.athena`): engine version 3, results under
analytics-results/ encrypted with SSE-S3, a cap on the bytes one query may scan, CloudWatch metrics. The workgroup
does not enforce its result location: each query names its brand's and report's prefix under analytics-results/
(where a poll looks for it), and the function's role may write nowhere else.
"""

from __future__ import annotations

import re

from aws_cdk import CfnOutput, Stack, Token
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdp import topology
from cdp.warehouse.schema import PROJECTION_FIRST_DAY, TABLES, WarehouseTable

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARTITION_COMMENTS = {"brand_id": "the brand (injected: name it in the query)", "dt": "the UTC day, YYYY-MM-DD"}
# A report reads a few columns of one brand's events: far less than this even for hundreds of millions of events; a
# query past it is cancelled (and paid for up to it) instead of scanning on
BYTES_SCANNED_PER_QUERY = 100 * 2**30


def _base(stack_name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", stack_name.lower()).strip("_") or "cdp"


def database_name(stack_name: str) -> str:
    """Glue names are lowercase letters, digits and underscores; one database per stack."""
    return f"{_base(stack_name)}_warehouse"


def workgroup_name(stack_name: str) -> str:
    """Athena workgroups are account-wide names: one per stack."""
    return f"{_base(stack_name)}_analytics"


def projection(table: WarehouseTable, location: str) -> dict[str, str]:
    """Partition projection parameters: the partitions Athena computes instead of reading them from the catalog."""
    params = {
        "projection.enabled": "true",
        "projection.brand_id.type": "injected",
        "storage.location.template": location + "/".join(f"{key}=${{{key}}}" for key in table.partition_keys) + "/",
    }
    if "dt" in table.partition_keys:
        params |= {
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy-MM-dd",
            "projection.dt.range": f"{PROJECTION_FIRST_DAY.isoformat()},NOW",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
        }
    return params


class Warehouse(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        name = stack.stack_name
        self.database_name = database_name("cdp" if Token.is_unresolved(name) else name)
        results = f"s3://{bucket.bucket_name}/{topology.ANALYTICS_RESULTS_PREFIX}"
        self.workgroup = athena.CfnWorkGroup(
            self,
            "AnalyticsWorkgroup",
            name=workgroup_name("cdp" if Token.is_unresolved(name) else name),
            description="cdp analytics API: report queries over the warehouse database",
            state="ENABLED",
            recursive_delete_option=True,  # its query history goes with the stack
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=False,  # each query names its brand's and report's prefix
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_PER_QUERY,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=results,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )
        self.workgroup_name = self.workgroup.ref  # the name, with the function's dependency on it
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="cdp warehouse: profiles, tags and events as Parquet (cdp.warehouse), written nightly",
            ),
        )
        self.tables: dict[str, glue.CfnTable] = {}
        for table in TABLES:
            location = f"s3://{bucket.bucket_name}/{table.prefix}"
            cfn = glue.CfnTable(
                self,
                f"{table.name.capitalize()}Table",
                catalog_id=stack.account,
                database_name=self.database_name,
                table_input=glue.CfnTable.TableInputProperty(
                    name=table.name,
                    description=table.description,
                    table_type="EXTERNAL_TABLE",
                    parameters={"classification": "parquet", "EXTERNAL": "TRUE", **projection(table, location)},
                    partition_keys=[
                        glue.CfnTable.ColumnProperty(name=key, type="string", comment=PARTITION_COMMENTS[key])
                        for key in table.partition_keys
                    ],
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=location,
                        input_format=PARQUET_INPUT,
                        output_format=PARQUET_OUTPUT,
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library=PARQUET_SERDE, parameters={"serialization.format": "1"}
                        ),
                        columns=[
                            glue.CfnTable.ColumnProperty(name=c.name, type=c.glue, comment=c.comment or None)
                            for c in table.columns
                        ],
                    ),
                ),
            )
            cfn.add_dependency(self.database)
            self.tables[table.name] = cfn
        CfnOutput(self, "WarehouseDatabase", value=self.database_name, description="Glue database of the warehouse")
        CfnOutput(
            self, "AnalyticsWorkgroupName", value=self.workgroup.ref, description="Athena workgroup of the reports"
        )
