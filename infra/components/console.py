"""The console on AWS: its users in a Cognito user pool, its files in S3 behind CloudFront.

Sign-in: the pool's users carry their permission scopes and org scope as the custom attributes `cdp_scopes` and
`cdp_scope` (set by an administrator: the console's app client may read them, never write them), so the ID token a
user signs in with (`USER_PASSWORD_AUTH` or SRP, no client secret: a browser holds no secret) is checked by every
function as the local server's are (`cdp.ingest.console_tokens`: issuer, audience = the app client, the pool's JWKS).

Hosting: the `cdp_console` package's files (the same `cdp serve` serves) and a `config.json` naming the pool and
client, in a private bucket read by CloudFront through origin access control; `/v1/*` goes to the HTTP API from the
same origin, so the page needs no CORS. The response headers carry the CSP the local server sends, plus the Cognito
endpoint the sign-in calls.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk.aws_apigatewayv2 import HttpApi
from constructs import Construct

from cdp import topology
from infra.nag import acknowledge, arn_ref

ID_TOKEN_HOURS = 1
CONSOLE_FILES = Path(str(resources.files("cdp_console")))


class Console(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            self_sign_up_enabled=False,  # an administrator adds users with their scopes
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            custom_attributes={
                "cdp_scopes": cognito.StringAttribute(min_len=0, max_len=2048, mutable=True),
                "cdp_scope": cognito.StringAttribute(min_len=0, max_len=512, mutable=True),
            },
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional per user (TOTP): the console's sign-in is a password flow a brand may harden by requiring "
            "it on the pool; required MFA without an enrolment page would lock every new user out.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "The Plus feature plan (threat protection) is priced per monthly active user: a brand's choice, see COG3.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG3",
            "Threat protection (the Plus feature plan) is priced per active user; a brand turns it on where its "
            "policy asks for it. Passwords are long, self sign-up is off and accounts are added by an administrator.",
        )
        readable = cognito.ClientAttributes().with_standard_attributes(email=True, fullname=True, locale=True)
        self.client = self.user_pool.add_client(
            "ConsoleClient",
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(ID_TOKEN_HOURS),
            access_token_validity=Duration.hours(ID_TOKEN_HOURS),
            refresh_token_validity=Duration.days(1),
            read_attributes=readable.with_custom_attributes("cdp_scopes", "cdp_scope"),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(fullname=True, locale=True),
        )
        self.issuer = f"https://cognito-idp.{stack.region}.{stack.url_suffix}/{self.user_pool.user_pool_id}"

    @staticmethod
    def _acknowledge_deployment(stack: Stack, bucket: s3.Bucket) -> None:
        """CDK's BucketDeployment copies the files with one singleton function of its own making (stack-level)."""
        basic_role = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        assets = "arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*"
        reasons = {
            f"AwsSolutions-IAM4[Policy::{basic_role}]": (
                "CDK's deployment function logs with the basic execution role; it runs only at deploy time."
            ),
            "AwsSolutions-IAM5[Resource::*]": "CloudFront CreateInvalidation supports no resource-level scoping here.",
            "AwsSolutions-IAM5[Action::s3:GetBucket*]": "CDK's grantRead of the asset and console buckets.",
            "AwsSolutions-IAM5[Action::s3:GetObject*]": "CDK's grantRead of the asset and console buckets.",
            "AwsSolutions-IAM5[Action::s3:List*]": "CDK's grantRead of the asset and console buckets.",
            "AwsSolutions-IAM5[Action::s3:Abort*]": "CDK's grantReadWrite of the console bucket (multipart uploads).",
            "AwsSolutions-IAM5[Action::s3:DeleteObject*]": "CDK's grantReadWrite: files removed from the console go.",
            f"AwsSolutions-IAM5[Resource::{assets}]": "The bootstrap asset bucket's objects: the staged files.",
            "AwsSolutions-L1": "CDK pins the deployment function's runtime (it bundles the AWS CLI for it).",
        }
        reasons[f"AwsSolutions-IAM5[Resource::{arn_ref(bucket)}/*]"] = "The console bucket's files, which it replaces."
        for child in stack.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                for finding, reason in reasons.items():
                    acknowledge(child, finding, reason)

    def token_env(self) -> dict[str, str]:
        """What every function that takes an API key needs to take a console user's ID token too."""
        return {
            topology.CONSOLE_TOKEN_ISSUER_ENV: self.issuer,
            topology.CONSOLE_TOKEN_AUDIENCE_ENV: self.client.user_pool_client_id,
            topology.CONSOLE_JWKS_URL_ENV: f"{self.issuer}/.well-known/jwks.json",
        }

    def host(self, api: HttpApi) -> cloudfront.Distribution:
        """The files in a private bucket behind CloudFront, `/v1/*` forwarded to the HTTP API."""
        stack = Stack.of(self)
        bucket = s3.Bucket(
            self,
            "Files",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "The console's own files, the same for every viewer and read by CloudFront alone; the API calls the page "
            "makes are logged by the HTTP API.",
        )
        cognito_endpoint = f"https://cognito-idp.{stack.region}.{stack.url_suffix}"
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=(
                        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; "
                        f"connect-src 'self' {cognito_endpoint}"
                    ),
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
            ),
        )
        # /console/ (and any folder) is its index.html: S3 has no folder index behind origin access control
        index = cloudfront.Function(
            self,
            "FolderIndex",
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            code=cloudfront.FunctionCode.from_inline(
                "function handler(event) { var r = event.request;"
                " if (r.uri.endsWith('/')) { r.uri += 'index.html'; } return r; }"
            ),
        )
        api_domain = Fn.select(2, Fn.split("/", api.api_endpoint))  # https://{id}.execute-api.{region}.{suffix}
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="cdp console: the page and /v1/* from one origin",
            default_root_object="console/index.html",
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=headers,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=index, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            additional_behaviors={
                "/v1/*": cloudfront.BehaviorOptions(
                    origin=origins.HttpOrigin(api_domain, protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY),
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,  # every answer is the caller's own
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                )
            },
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR1",
            "A brand's marketers work from wherever they are; the API behind it checks every caller's token or key.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR2",
            "No WAF web ACL by default (priced per ACL and rule); the HTTP API throttles per route and checks every "
            "caller. A brand attaches its own ACL where its policy asks for one.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR3",
            "CloudFront's standard logs need an ACL-enabled bucket, which the stack's buckets refuse (owner enforced); "
            "the calls that matter (/v1/*) are logged by the HTTP API's access logs.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate allows TLSv1 to old viewers; a brand's custom domain with its "
            "own certificate gets the TLSv1.2_2021 policy set here.",
        )
        config = {
            "auth": {
                "kind": "cognito",
                "region": stack.region,
                "client_id": self.client.user_pool_client_id,
                "endpoint": cognito_endpoint,
            },
            "api": "",
        }
        s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[
                s3deploy.Source.asset(str(CONSOLE_FILES), exclude=["*.py", "__pycache__"]),
                s3deploy.Source.json_data("config.json", config),
            ],
            destination_bucket=bucket,
            destination_key_prefix="console/",
            distribution=distribution,
            distribution_paths=["/console/*"],
            memory_limit=256,
        )
        self._acknowledge_deployment(stack, bucket)
        CfnOutput(self, "ConsoleUrl", value=f"https://{distribution.distribution_domain_name}/console/")
        CfnOutput(self, "ConsoleUserPoolId", value=self.user_pool.user_pool_id)
        return distribution
