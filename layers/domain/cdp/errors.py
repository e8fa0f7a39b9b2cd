"""Typed errors shared by every context. The edge (a handler) maps them: 4xx for bad input, re-raise for retry/DLQ."""

from __future__ import annotations


class CdpError(Exception):
    """Base of every error the product raises on purpose."""


class InvalidInputError(CdpError):
    """The caller sent something wrong; `location` names the field (dotted path) when known."""

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


class PayloadTooLargeError(InvalidInputError):
    """The body (or what it inflates to) is over the route's limit: HTTP 413."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The body's Content-Type is not one the route reads: HTTP 415."""


class AuthenticationError(CdpError):
    """Missing or wrong credentials or signature."""


class ForbiddenError(CdpError):
    """Valid credentials that do not allow this: a missing permission scope, or a place outside the key's scope."""


class NotFoundError(CdpError):
    """The thing asked for does not exist."""


class ConflictError(CdpError):
    """A concurrent writer changed the record first; the work is safe to retry."""


class RetryableError(CdpError):
    """A transient failure of a dependency; raise so Lambda/SQS/Step Functions retry."""


class StoreError(RetryableError):
    """A storage adapter failed (wrapped SDK error)."""


class PublishError(RetryableError):
    """Publishing to the event bus failed for some entries."""


class ModelIntegrityError(CdpError):
    """A stored model's bytes do not match the SHA-256 recorded when it was trained."""


class ChannelError(RetryableError):
    """A delivery channel refused or failed a send."""
