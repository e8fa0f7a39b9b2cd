"""Small, scoped corrections of moto where it departs from AWS in ways our handlers notice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from moto.events.utils import EventTemplateParser

from cdp_local.runtime.moto_guard import Reliance, check

# AWS delivers the whole envelope to an SQS target; moto 5.2.5's default template drops "account", which the
# Powertools EventBridgeModel requires.
_FULL_ENVELOPE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", "account": "<account>",'
    ' "time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)


# If moto starts sending the whole envelope itself (or renames these), the fix must be re-checked or dropped.
ENVELOPE_RELIES_ON = (
    Reliance("moto.events.utils:EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE", "bed7e495ddc0029c"),
    Reliance("moto.events.utils:EventTemplateParser.DEFAULT_EVENT_INPUT_PATHS_MAP", "ae9f6a0cbf358451"),
    Reliance("moto.events.utils:EventTemplateParser.parse", "26da46228edb6d83"),
)


@contextmanager
def eventbridge_full_envelope() -> Iterator[None]:
    check("eventbridge_full_envelope", ENVELOPE_RELIES_ON)
    with mock.patch.object(EventTemplateParser, "DEFAULT_EVENT_INPUT_TEMPLATE", _FULL_ENVELOPE):
        yield
