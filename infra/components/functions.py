"""The function factory: one Lambda function per `cdp.topology.FunctionSpec`, sharing one code asset and the layers.

Runtime python3.12 on x86_64 (the layers in `infra.layers` are built for exactly that pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdp import topology
from cdp.topology import LayerName

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64


@dataclass(frozen=True)
class FunctionAssets:
    code_dir: Path  # contains `functions/`
    layer_dirs: Mapping[LayerName, Path]  # each contains `python/`


class Functions(Construct):
    """Builds every function in `topology.FUNCTIONS`; `env_values` maps each env var name a spec lists to its value."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        assets: FunctionAssets,
        env_values: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.code = lambda_.Code.from_asset(str(assets.code_dir))
        self.layers: dict[LayerName, lambda_.LayerVersion] = {
            name: lambda_.LayerVersion(
                self,
                f"{name.capitalize()}Layer",
                code=lambda_.Code.from_asset(str(path)),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
                description=f"cdp {name} layer",
            )
            for name, path in assets.layer_dirs.items()
        }
        self.by_key: dict[str, lambda_.Function] = {
            spec.key: self._function(spec, env_values) for spec in topology.FUNCTIONS
        }
        Validations.of(self).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-L1",
                reason="python3.12 is pinned on purpose: the deps and ml layers hold cp312 wheels built by "
                "infra/layers.py; runtime and layers move together.",
            )
        )

    def _function(self, spec: topology.FunctionSpec, env_values: Mapping[str, str]) -> lambda_.Function:
        missing = [name for name in spec.env if name not in env_values and name not in topology.LATE_ENV]
        if missing:
            raise KeyError(f"{spec.key}: no value for environment variables {missing}")
        environment = {name: env_values[name] for name in spec.env if name not in topology.LATE_ENV}
        if "POWERTOOLS_SERVICE_NAME" in environment:
            environment["POWERTOOLS_SERVICE_NAME"] = spec.local_name
        log_group = logs.LogGroup(
            self,
            f"{spec.logical_id}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        return lambda_.Function(
            self,
            spec.logical_id,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=self.code,
            layers=[self.layers[name] for name in spec.layers],
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            ephemeral_storage_size=Size.mebibytes(spec.ephemeral_mb) if spec.ephemeral_mb != 512 else None,
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            description=spec.local_name,
        )
