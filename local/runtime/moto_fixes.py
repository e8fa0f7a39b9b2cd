"""Small, scoped corrections of moto where it departs from AWS in ways our handlers notice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from moto.events.utils import EventTemplateParser

# AWS delivers the whole envelope to an SQS target; moto 5.2.5's default template drops "account", which the
# Powertools EventBridgeModel requires.
_FULL_ENVELOPE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", "account": "<account>",'
    ' "time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)


@contextmanager
def eventbridge_full_envelope() -> Iterator[None]:
    with mock.patch.object(EventTemplateParser, "DEFAULT_EVENT_INPUT_TEMPLATE", _FULL_ENVELOPE):
        yield
