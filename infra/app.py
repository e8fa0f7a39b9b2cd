"""CDK entry point: `cd infra && python app.py` or `python -m infra.app`.

Deploy: `make layers && cd infra && npx aws-cdk@2.1148.1 deploy` (context values in infra/cdk.json, override with
`-c emailFromAddress=...`). Lambda runtime python3.12 on x86_64, matching the layers built by `infra.layers`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import layers
from infra.config import DeployConfig
from infra.stack import CdpStack, StackAssets

_HERE = Path(__file__).resolve().parent

STACK_ID = "CdpStack"
# Feature flags this stack relies on, set in code so tests and `python app.py` behave like the CLI.
FEATURE_FLAGS: dict[str, Any] = {
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,  # log delivery by bucket policy, no ACLs
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
}
CDK_JSON = _HERE / "cdk.json"


def default_context() -> dict[str, Any]:
    """The `context` block of infra/cdk.json, so a plain `python app.py` synthesizes like the CLI does."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


def build_app(
    *,
    context: dict[str, Any] | None = None,
    assets: StackAssets | None = None,
    outdir: str | None = None,
) -> tuple[App, CdpStack]:
    """The app with cdk-nag AwsSolutions checks attached; `app.synth()` raises if any finding is unacknowledged."""
    app = App(context={**FEATURE_FLAGS, **(default_context() if context is None else context)}, outdir=outdir)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    config = DeployConfig.from_context(app.node.try_get_context)
    stack = CdpStack(app, STACK_ID, config=config, assets=assets, description="cdp: serverless customer data platform")
    return app, stack


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="synthesize the cdp CDK app")
    # Without it the CDK CLI's own output directory (or a temporary one) is used.
    parser.add_argument("--outdir", help="cloud assembly directory, e.g. cdk.out")
    args = parser.parse_args(argv)
    layers.build_all()  # no-op when inputs are unchanged; keeps the domain layer in step with the code
    app, _ = build_app(outdir=args.outdir)
    assembly = app.synth()
    print(f"cloud assembly: {assembly.directory}")


if __name__ == "__main__":
    main()
