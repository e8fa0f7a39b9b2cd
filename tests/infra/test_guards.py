"""The stack's own guards: bad deploy config, unknown ASL placeholders, missing env values fail at synth time."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cdp import topology
from infra.components.state_machines import placeholders
from infra.config import DeployConfig

pytestmark = pytest.mark.xdist_group("cdk")

_VALID = {"smsOriginationIdentity": "CDP", "emailFromAddress": "hi@brand.example.com"}


def test_config_reads_context_and_fills_defaults() -> None:
    # Given only the required context values / When read / Then defaults fill the rest
    config = DeployConfig.from_context(_VALID.get)
    assert config.email_domain == "brand.example.com"
    assert config.default_phone_region == "CN"
    assert config.send_via_outbox is False


@pytest.mark.parametrize(
    "override",
    [{"emailFromAddress": "not-an-address"}, {"smsOriginationIdentity": ""}, {"defaultPhoneRegion": "china"}],
)
def test_config_rejects_bad_values(override: dict[str, str]) -> None:
    # Given a malformed context value / When read / Then synth stops with a validation error
    context = {**_VALID, **override}
    with pytest.raises(ValidationError):
        DeployConfig.from_context(context.get)


def test_placeholders_are_found_in_asl(tmp_path: Path) -> None:
    asl = tmp_path / "m.asl.json"
    asl.write_text('{"Resource": "${AFunctionArn}", "B": "${Other_1}", "C": "$.not"}', encoding="utf-8")
    assert placeholders(asl) == {"AFunctionArn", "Other_1"}


def _imported_functions(stack: object) -> dict[str, object]:
    from aws_cdk import aws_lambda as lambda_

    return {
        spec.key: lambda_.Function.from_function_arn(
            stack,
            spec.logical_id,
            f"arn:aws:lambda:us-east-1:123456789012:function:{spec.local_name}",
        )
        for spec in topology.FUNCTIONS
    }


def test_unknown_asl_placeholder_fails_synth(tmp_path: Path) -> None:
    from aws_cdk import App, Stack

    from infra.components.state_machines import StateMachines

    # Given a score ASL naming a function the topology does not map
    (tmp_path / topology.SCORE_MACHINE.asl_file).write_text(
        '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${MysteryArn}", "End": true}}}',
        encoding="utf-8",
    )
    stack = Stack(App(), "T")
    # When the machines are built / Then synth stops and names the placeholder
    with pytest.raises(ValueError, match="MysteryArn"):
        StateMachines(stack, "Machines", asl_dir=tmp_path, functions=_imported_functions(stack))


def test_missing_asl_file_skips_its_machine(tmp_path: Path) -> None:
    from aws_cdk import App, Stack

    from infra.components.state_machines import StateMachines

    # Given an empty ASL directory / When the machines are built / Then none is created (and synth warns)
    stack = Stack(App(), "T")
    machines = StateMachines(stack, "Machines", asl_dir=tmp_path, functions=_imported_functions(stack))
    assert machines.by_key == {}


def test_a_function_env_var_without_a_value_fails_synth(tmp_path: Path) -> None:
    from aws_cdk import App, Stack

    from infra.components.functions import FunctionAssets, Functions

    # Given values for every env var but the ledger table
    values = {name: "x" for spec in topology.FUNCTIONS for name in spec.env if name != topology.LEDGER_TABLE.env_var}
    assets = FunctionAssets(code_dir=tmp_path, layer_dirs={"domain": tmp_path, "deps": tmp_path, "ml": tmp_path})
    # When the factory runs / Then it names the missing variable
    with pytest.raises(KeyError, match=topology.LEDGER_TABLE.env_var):
        Functions(Stack(App(), "T"), "Functions", assets=assets, env_values=values)
