"""One CDK synthesis per test session (Node start + synth take ~10 s), shared by every infra test."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp import topology

CONTEXT: dict[str, Any] = {
    "smsOriginationIdentity": "CDPSHOP",
    "emailFromAddress": "hello@brand.example.com",
    "defaultPhoneRegion": "CN",
    "apiRateLimit": 150,
    "apiBurstLimit": 300,
}


@dataclass(frozen=True)
class Synth:
    template: Any  # aws_cdk.assertions.Template
    raw: dict[str, Any]
    assembly_dir: Path
    template_file: Path

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == cfn_type}


def _asl_dir(base: Path) -> Path:
    """The real ASL files; a minimal valid machine stands in for any file its author has not landed yet."""
    from infra.stack import STATEMACHINES_DIR

    out = base / "statemachines"
    out.mkdir()
    for spec in topology.STATE_MACHINES:
        real = STATEMACHINES_DIR / spec.asl_file
        if real.is_file():
            shutil.copy(real, out / spec.asl_file)
            continue
        states = {f"Invoke{name}": {"Type": "Task", "Resource": f"${{{name}}}", "End": True} for name in spec.functions}
        first = next(iter(states))
        chain = list(states)
        for current, following in itertools.pairwise(chain):
            del states[current]["End"]
            states[current]["Next"] = following
        (out / spec.asl_file).write_text(json.dumps({"StartAt": first, "States": states}), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from aws_cdk.assertions import Template

    from infra import layers
    from infra.app import build_app
    from infra.components.functions import FunctionAssets
    from infra.stack import StackAssets

    base = tmp_path_factory.mktemp("cdk")
    # The domain layer and code asset are the real ones (fast, local). The third-party layers are stand-ins:
    # template assertions never read their content, and test_layers.py builds and checks the real ones.
    third_party: dict[str, Path] = {}
    for name in ("deps", "ml", "warehouse"):
        site = base / "layers" / name / "python"
        site.mkdir(parents=True)
        (site / "README.txt").write_text(f"stand-in for the {name} layer in template tests\n", encoding="utf-8")
        third_party[name] = site.parent
    assets = StackAssets(
        functions=FunctionAssets(
            code_dir=layers.stage_function_code(),
            layer_dirs={"domain": layers.build_domain_layer(), **third_party},
        ),
        asl_dir=_asl_dir(base),
    )
    app, stack = build_app(context=CONTEXT, assets=assets, outdir=str(base / "cdk.out"))
    assembly = app.synth()  # raises if cdk-nag reports an unacknowledged error
    artifact = assembly.get_stack_by_name(stack.stack_name)
    raw: dict[str, Any] = artifact.template
    return Synth(
        template=Template.from_json(raw),
        raw=raw,
        assembly_dir=Path(assembly.directory),
        template_file=Path(assembly.directory) / artifact.template_file,
    )


# ---- reading the template -------------------------------------------------------------------------------


CDK_DEPLOYMENT = "CustomCDKBucketDeployment"  # CDK's own function copying the console's files, at deploy time only


def product_functions(synth: Synth) -> dict[str, dict[str, Any]]:
    """Every function of the product in the template (not CDK's console deployment function)."""
    return {k: f for k, f in synth.resources("AWS::Lambda::Function").items() if not k.startswith(CDK_DEPLOYMENT)}


def function_by_handler(synth: Synth, handler: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (k, v) for k, v in synth.resources("AWS::Lambda::Function").items() if v["Properties"]["Handler"] == handler
    ]
    assert len(matches) == 1, f"expected one function with handler {handler}, found {len(matches)}"
    return matches[0]


def get_att_id(value: Any) -> str:
    """The logical id behind `{"Fn::GetAtt": [id, "Arn"]}` or `{"Ref": id}`."""
    if "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return str(value["Ref"])


def policy_statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def statement_actions(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def resource_list(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def referenced_ids(statement: dict[str, Any]) -> set[str]:
    """The logical ids a statement's resources point at by Ref or GetAtt (S3 object ARNs are joins: not included)."""
    return {get_att_id(r) for r in resource_list(statement) if isinstance(r, dict) and ({"Ref", "Fn::GetAtt"} & set(r))}
