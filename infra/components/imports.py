"""The trigger of imports: S3 "Object Created" under imports/incoming/ (files) or imports/history/ (history)
-> EventBridge -> the import machine.

S3 sends its events to the account's default bus once the bucket has EventBridge notifications on (set directly on
the CloudFormation bucket: CDK's `eventBridgeEnabled` would add a custom-resource Lambda for the same switch). The
rule hands the machine {bucket, key}; the execution's name (EventBridge makes one per event) is the import id.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdp.imports.keys import INCOMING_PREFIX


class FileImportTrigger(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.Bucket,
        machine: sfn.IStateMachine,
        dead_letter_queue: sqs.IQueue,
        prefix: str = INCOMING_PREFIX,
        description: str = "cdp-file-import: a member or order file dropped under imports/incoming/",
        enable_notifications: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        if enable_notifications:
            cfn_bucket = bucket.node.default_child
            assert isinstance(cfn_bucket, s3.CfnBucket)
            cfn_bucket.add_property_override(
                "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
            )
        self.rule = events.Rule(
            self,
            "ObjectCreatedRule",
            description=description,
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]}, "object": {"key": [{"prefix": prefix}]}},
            ),
        )
        # A file whose execution cannot be started lands in the DLQ (alarmed) instead of never being imported.
        self.rule.add_target(
            targets.SfnStateMachine(
                machine,
                input=events.RuleTargetInput.from_object(
                    {
                        "bucket": events.EventField.from_path("$.detail.bucket.name"),
                        "key": events.EventField.from_path("$.detail.object.key"),
                    }
                ),
                dead_letter_queue=dead_letter_queue,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
            )
        )
