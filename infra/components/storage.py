"""Stateful data: the DynamoDB tables from `cdp.topology.TABLES` and the data bucket (with its access-log bucket)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdp import topology


def _table(scope: Construct, spec: topology.TableSpec) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        spec.logical_id,
        partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=spec.sort_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=spec.ttl_attribute,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        deletion_protection=True,
        # Profiles and the ledger are the system of record: never dropped by a stack update.
        removal_policy=RemovalPolicy.RETAIN,
    )
    if spec.indexes:
        # Declared on the CloudFormation resource, not the L2 table: its grants would then add `table/index/*` to
        # every function that touches the table. The one reader is granted its index by name (access.py).
        cfn = table.node.default_child
        assert isinstance(cfn, dynamodb.CfnTable)
        names = [spec.partition_key, spec.sort_key, *(index.partition_key for index in spec.indexes)]
        cfn.add_property_override(
            "AttributeDefinitions",
            [{"AttributeName": name, "AttributeType": "S"} for name in dict.fromkeys(names)],
        )
        cfn.add_property_override(
            "GlobalSecondaryIndexes",
            [
                {
                    "IndexName": index.name,
                    "KeySchema": [{"AttributeName": index.partition_key, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
                for index in spec.indexes
            ],
        )
    return table


RETENTION_DAYS_BY_PREFIX: dict[str, int] = {
    topology.RAW_PREFIX: topology.RAW_RETENTION_DAYS,
    topology.IMPORTS_PREFIX: topology.IMPORTS_RETENTION_DAYS,
    topology.REJECTS_PREFIX: topology.REJECTS_RETENTION_DAYS,
    topology.EXPORTS_PREFIX: topology.EXPORTS_RETENTION_DAYS,
    topology.ANALYTICS_RESULTS_PREFIX: topology.ANALYTICS_RESULTS_RETENTION_DAYS,
}
"""What the data bucket forgets, and when: the figures the erasure receipt quotes (`cdp.topology`)."""


def data_lifecycle_rules() -> list[s3.LifecycleRule]:
    """One expiry rule per retained prefix, plus the cleanup a versioned bucket needs: an expired object only gets a
    delete marker, so its old version must expire too (and the marker with it), or nothing is ever really gone."""
    rules = [
        s3.LifecycleRule(id=f"expire-{prefix.strip('/')}", prefix=prefix, expiration=Duration.days(days))
        for prefix, days in RETENTION_DAYS_BY_PREFIX.items()
    ]
    rules.append(
        s3.LifecycleRule(
            id="expire-old-versions",
            noncurrent_version_expiration=Duration.days(topology.NONCURRENT_VERSION_DAYS),
            expired_object_delete_marker=True,
            abort_incomplete_multipart_upload_after=Duration.days(7),  # large import uploads that never finished
        )
    )
    # The warehouse export replaces its snapshots and recent days every night, and rewrites erased persons' days: their
    # old versions go after a day (of overlapping rules, S3 applies the shorter expiry).
    rules.append(
        s3.LifecycleRule(
            id="expire-old-versions-warehouse",
            prefix=topology.WAREHOUSE_PREFIX,
            noncurrent_version_expiration=Duration.days(topology.WAREHOUSE_NONCURRENT_DAYS),
        )
    )
    return rules


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {spec.logical_id: _table(self, spec) for spec in topology.TABLES}

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 log delivery cannot write to SSE-KMS buckets
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(self.access_logs_bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-S1",
                reason="This is the server access log destination; logging it into itself would loop.",
            )
        )
        self.data_bucket = s3.Bucket(
            self,
            "DataBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=data_lifecycle_rules(),
            removal_policy=RemovalPolicy.RETAIN,
        )

    def table(self, spec: topology.TableSpec) -> dynamodb.Table:
        return self.tables[spec.logical_id]
