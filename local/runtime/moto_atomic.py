"""moto's DynamoDB backend is not thread-safe; DynamoDB applies each request atomically. Tests and benchmarks that run
parallel writers serialise the backend's operations, one request at a time, as the service does."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any
from unittest import mock

from moto.dynamodb.models import DynamoDBBackend

ATOMIC_OPERATIONS = ("get_item", "put_item", "update_item", "delete_item", "query", "scan", "transact_write_items")


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    """Inside `mock_aws()` (and any moto speed-ups, which it wraps): each operation runs alone."""
    lock = threading.RLock()  # re-entrant: a transaction reads and writes items through the same methods

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return call

    methods: dict[str, Any] = {name: atomic(getattr(DynamoDBBackend, name)) for name in ATOMIC_OPERATIONS}
    with mock.patch.multiple(DynamoDBBackend, **methods):
        yield
