"""The whole stack on moto, in-process: `with LocalRuntime() as rt: rt.http(...); rt.drain(); ...`."""

from cdp_local.runtime.apigw import HttpResponse
from cdp_local.runtime.core import (
    DrainReport,
    FunctionInvocationError,
    LocalRuntime,
    QueueCounts,
    ScheduleFiring,
)
from cdp_local.runtime.lambdas import LocalLambdaContext

__all__ = [
    "DrainReport",
    "FunctionInvocationError",
    "HttpResponse",
    "LocalLambdaContext",
    "LocalRuntime",
    "QueueCounts",
    "ScheduleFiring",
]
