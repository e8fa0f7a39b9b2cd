"""The public edge: the API-keys secret and the HTTP API whose routes come from `cdp.topology.API_ROUTES`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jsii
from aws_cdk import Acknowledgment, CfnOutput, RemovalPolicy, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdp import topology


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """The HttpStage prop is a jsii interface, not a struct: Python must hand over an object implementing it."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        )


def _operator_secret(scope: Construct, description: str, template: str, rotation_reason: str) -> secretsmanager.Secret:
    """A JSON secret never left empty (a generated bootstrap value), kept on stack deletion; rotation is an operator
    action because the other side of each entry is an external partner."""
    secret = secretsmanager.Secret(
        scope,
        "Secret",
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template=template,
            generate_string_key="bootstrap",
            exclude_punctuation=True,
            password_length=40,
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )
    Validations.of(secret).acknowledge(Acknowledgment(id="AwsSolutions::AwsSolutions-SMG4", reason=rotation_reason))
    return secret


class ApiKeys(Construct):
    """Per-client API keys with scopes checked by the API functions (channels post webhooks; they cannot sign SigV4)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = _operator_secret(
            self,
            "cdp API keys per source; rotate with the cdp CLI when a partner key is reissued",
            '{"keys": {}, "hmac": {}}',
            "Keys are issued to external channel partners; rotating them needs the partner to take the new key, so "
            "rotation is an operator action, not a rotation Lambda.",
        )


class SourceSecrets(Construct):
    """Per-source secrets (Segment write keys, WeChat tokens, Shopify/ad/POS/SMS/push signing keys, SES topics, the
    tracked-link key, pulled shops' app secrets): the JSON document `cdp.connectors.sources.SourcesConfig` reads."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = _operator_secret(
            self,
            "cdp per-source secrets and brand bindings (see cdp.connectors.sources)",
            '{"write_keys": {}}',
            "Each entry is a secret shared with an external platform (WeChat, Shopify, ad platforms); rotating it "
            "needs the platform console, so rotation is an operator action.",
        )


_API_KEY_REASON = (
    "Callers are channel webhooks and brand systems that cannot carry IAM or Cognito credentials; the integrated "
    "function checks a per-client API key (with permission and org-hierarchy scopes) from Secrets Manager before any "
    "work."
)
_SIGNED_LINK_REASON = (
    "A link a person opens on a phone (a tracked link, an offer's claim link) or the brand's app reading one "
    "person's in-app inbox: the signed token (in the path, or the inbox token as a Bearer header) is the only "
    "credential; the function checks its HMAC (and expiry) in constant time before any work."
)


@dataclass(frozen=True)
class Throttle:
    rate_limit: int  # requests per second, steady state
    burst_limit: int


class HttpApi(Construct):
    """Throttling is per route across all callers: an HTTP API has no usage plans or API keys, so no per-client
    quota exists at this layer (see the README: per-key limits would need a REST API or CloudFront + WAF)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        default_throttle: Throttle,
        route_throttles: Mapping[str, Throttle] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(self, "Api", description="cdp ingest and profile API", create_default_stage=False)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.DESTROY
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=default_throttle.rate_limit, burst_limit=default_throttle.burst_limit
            ),
            access_log_settings=_AccessLogs(access_logs),
        )
        route_throttles = route_throttles or {}
        route_settings: dict[str, dict[str, int]] = {}
        integration_by_key: dict[str, integrations.HttpLambdaIntegration] = {}
        for method, path, key in topology.API_ROUTES:
            if key not in integration_by_key:
                # One invoke permission per function for this API (not one per route: 90+ routes would take the
                # stack past CloudFormation's 500 resources); API Gateway reaches a function only through its routes.
                integration_by_key[key] = integrations.HttpLambdaIntegration(
                    f"{key}-integration", functions[key], scope_permission_to_route=False
                )
            routes = self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod(method)], integration=integration_by_key[key]
            )
            for route in routes:
                throttle = route_throttles.get(f"{method} {path}") or route_throttles.get(
                    key
                )  # the route's, else its function's
                if throttle is not None:
                    route_settings[f"{method} {path}"] = {
                        "ThrottlingRateLimit": throttle.rate_limit,
                        "ThrottlingBurstLimit": throttle.burst_limit,
                    }
                    # The stage names the route by its key: API Gateway refuses settings for a route not created yet.
                    cfn_route = route.node.default_child
                    assert cfn_route is not None
                    self.stage.node.add_dependency(cfn_route)
                Validations.of(route).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions::AwsSolutions-APIG4",
                        reason=_SIGNED_LINK_REASON if (method, path) in topology.TOKEN_ROUTES else _API_KEY_REASON,
                    )
                )
        if route_settings:
            # The L2 stage sets only the default route's throttle; per-route settings go on the CloudFormation stage.
            cfn_stage = self.stage.node.default_child
            assert isinstance(cfn_stage, apigwv2.CfnStage)
            cfn_stage.add_property_override("RouteSettings", route_settings)
        CfnOutput(self, "ApiUrl", value=self.api.api_endpoint, description="base URL of the cdp HTTP API")
