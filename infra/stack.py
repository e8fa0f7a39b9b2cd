"""`CdpStack`: composes one construct per concern; every name and wire comes from `cdp.topology`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from constructs import Construct

from cdp import topology
from cdp.imports.keys import HISTORY_PREFIX
from infra import layers
from infra.components.access import Resources, grant_campaign_runs, grant_least_privilege
from infra.components.api import ApiKeys, HttpApi, SourceSecrets, Throttle
from infra.components.console import Console
from infra.components.delivery import DeliveryEvents
from infra.components.functions import FunctionAssets, Functions
from infra.components.imports import FileImportTrigger
from infra.components.messaging import Messaging
from infra.components.monitoring import Monitoring, work_queue_age_limit
from infra.components.schedules import Schedules
from infra.components.state_machines import StateMachines
from infra.components.storage import Storage
from infra.components.warehouse import Warehouse
from infra.config import DeployConfig

STATEMACHINES_DIR = Path(__file__).resolve().parent / "statemachines"

# The functions that draw on budget pools, each counting the draws that leave one running low (`BudgetPoolLow`).
# The journey engine (journey, campaign_scheduler: cdp.campaigns.journeys_dynamodb) and campaign_api build their
# offer stores without a watch yet: listed already, so the alarm counts their draws once they pass one.
BUDGET_DRAWERS = (
    topology.CAMPAIGN,
    topology.SEND,
    topology.OFFER_API,
    topology.OFFER_EVENTS,
    topology.JOURNEY,
    topology.CAMPAIGN_SCHEDULER,
    topology.CAMPAIGN_API,
)


def _default_function_assets() -> FunctionAssets:
    return FunctionAssets(
        code_dir=layers.CODE_DIR,
        layer_dirs={name: layers.layer_dir(name) for name in ("domain", "deps", "ml", "warehouse")},
    )


@dataclass(frozen=True)
class StackAssets:
    """Where the stack finds what it packages; tests point these at fixtures."""

    functions: FunctionAssets = field(default_factory=_default_function_assets)
    asl_dir: Path = STATEMACHINES_DIR


class CdpStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        assets: StackAssets | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        assets = assets or StackAssets()
        self.storage = Storage(self, "Storage")
        self.messaging = Messaging(self, "Messaging")
        self.api_keys = ApiKeys(self, "ApiKeys")
        self.sources = SourceSecrets(self, "SourceSecrets")
        # SES / SMS configuration sets: their delivery events come back (not in the China regions: awsSenders false)
        self.delivery = DeliveryEvents(self, "DeliveryEvents") if config.aws_senders else None
        # the Glue catalog over warehouse/ and the Athena workgroup the analytics API queries it in (the export
        # function is scheduled with the others); before the functions, which are given their names
        self.warehouse = Warehouse(self, "Warehouse", bucket=self.storage.data_bucket)
        self.console = Console(self, "Console")  # its users sign in with the functions' tokens
        self.functions = Functions(self, "Functions", assets=assets.functions, env_values=self._env_values(config))
        grant_least_privilege(
            self.functions.by_key,
            Resources(
                profiles=self.storage.table(topology.PROFILES_TABLE),
                ledger=self.storage.table(topology.LEDGER_TABLE),
                campaigns=self.storage.table(topology.CAMPAIGNS_TABLE),
                offers=self.storage.table(topology.OFFERS_TABLE),
                bucket=self.storage.data_bucket,
                bus=self.messaging.bus,
                api_keys=self.api_keys.secret,
                sources=self.sources.secret,
                console_users=self.console.user_pool,
                queues=self.messaging.queues,
                dlqs=self.messaging.dlqs,
                config=config,
                warehouse_database=self.warehouse.database_name,
                analytics_workgroup=self.warehouse.workgroup_name,
            ),
        )
        self.messaging.subscribe_consumers(self.functions.by_key)
        self.http_api = HttpApi(
            self,
            "HttpApi",
            functions=self.functions.by_key,
            default_throttle=Throttle(config.api_rate_limit, config.api_burst_limit),
            # heavier and more sensitive work per call than an ingest post: replays, redrives, profile reads/erasure
            route_throttles={
                topology.OPERATIONS.key: Throttle(config.admin_rate_limit, config.admin_burst_limit),
                topology.PROFILE_API.key: Throttle(config.profile_rate_limit, config.profile_burst_limit),
                topology.REDIRECT_ROUTE: Throttle(config.redirect_rate_limit, config.redirect_burst_limit),
            },
        )
        self.console.host(self.http_api.api)
        self.state_machines = StateMachines(
            self, "StateMachines", asl_dir=assets.asl_dir, functions=self.functions.by_key
        )
        campaign_machine = self.state_machines.by_key.get(topology.CAMPAIGN_MACHINE.key)
        if campaign_machine is not None:
            grant_campaign_runs(self.functions.by_key, campaign_machine)
        self.schedules = Schedules(
            self, "Schedules", functions=self.functions.by_key, machines=self.state_machines.by_key
        )
        import_machine = self.state_machines.by_key.get(topology.IMPORT_MACHINE.key)
        if import_machine is not None:
            # Shares the schedules' DLQ (and its alarm): both hold EventBridge deliveries to a machine that failed.
            self.file_imports = FileImportTrigger(
                self,
                "FileImports",
                bucket=self.storage.data_bucket,
                machine=import_machine,
                dead_letter_queue=self.schedules.dlq,
            )
        history_machine = self.state_machines.by_key.get(topology.HISTORY_IMPORT_MACHINE.key)
        if history_machine is not None:
            self.history_imports = FileImportTrigger(
                self,
                "HistoryImports",
                bucket=self.storage.data_bucket,
                machine=history_machine,
                dead_letter_queue=self.schedules.dlq,
                prefix=HISTORY_PREFIX,
                description="cdp-history-import: a brand's past events dropped under imports/history/",
                enable_notifications=import_machine is None,  # the file imports' trigger turned them on already
            )
        self.monitoring = Monitoring(self, "Monitoring", alarm_email=config.alarm_email)
        self.monitoring.chart_ingest(topology.INGEST.local_name)
        self.monitoring.alarm_on_sends(topology.SEND.local_name)
        self.monitoring.alarm_on_budgets([spec.local_name for spec in BUDGET_DRAWERS])
        self.monitoring.alarm_on_functions(self.functions.by_key)
        self.monitoring.alarm_on_http_api(self.http_api.api)
        self.monitoring.alarm_on_queue_age(
            {
                spec.logical_id: (self.messaging.queues[spec.logical_id], work_queue_age_limit(spec))
                for spec in topology.QUEUES
            }
        )
        self.monitoring.alarm_on_dlqs(
            {
                **self.messaging.dlqs,
                "Schedules": self.schedules.dlq,
                "ScheduledFunctionFailures": self.schedules.function_failures,
            }
        )
        self.monitoring.alarm_on_tables(self.storage.tables)
        self.monitoring.alarm_on_failed_executions(self.state_machines.by_key)

    def _env_values(self, config: DeployConfig) -> dict[str, str]:
        return {
            "POWERTOOLS_SERVICE_NAME": topology.APP,  # the factory narrows it to the function's name
            "POWERTOOLS_LOG_LEVEL": config.log_level,
            **{spec.env_var: self.storage.table(spec).table_name for spec in topology.TABLES},
            topology.DATA_BUCKET_ENV: self.storage.data_bucket.bucket_name,
            topology.EVENT_BUS_ENV: self.messaging.bus.event_bus_name,
            topology.API_KEYS_SECRET_ENV: self.api_keys.secret.secret_arn,
            topology.SOURCES_SECRET_ENV: self.sources.secret.secret_arn,
            **{q.dlq_env: self.messaging.dlqs[q.logical_id].queue_url for q in topology.QUEUES if q.dlq_env},
            **{q.url_env: self.messaging.queues[q.logical_id].queue_url for q in topology.QUEUES if q.url_env},
            topology.DEFAULT_REGION_ENV: config.default_phone_region,
            topology.SMS_ORIGINATION_ENV: config.sms_origination_identity,
            topology.EMAIL_FROM_ENV: config.email_from_address,
            topology.SES_CONFIGURATION_SET_ENV: self.delivery.email_configuration_set if self.delivery else "",
            topology.SMS_CONFIGURATION_SET_ENV: self.delivery.sms_configuration_set if self.delivery else "",
            topology.SEND_VIA_OUTBOX_ENV: "true" if config.send_via_outbox else "false",
            topology.TRACKED_LINK_BASE_URL_ENV: config.tracked_link_base_url,
            topology.ANALYTICS_ENGINE_ENV: "athena",
            topology.ANALYTICS_WORKGROUP_ENV: self.warehouse.workgroup_name,
            topology.WAREHOUSE_DATABASE_ENV: self.warehouse.database_name,
            **self.console.token_env(),
            topology.CONSOLE_USER_POOL_ENV: self.console.user_pool.user_pool_id,
        }
