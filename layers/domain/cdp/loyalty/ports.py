"""What the loyalty engine needs from a store: accounts read and written with a version check, each operation
recorded once (a retried order earns once), and timers by the month something in an account ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cdp.errors import CdpError
from cdp.loyalty.accounts import Account


class Operation(BaseModel):
    """One applied operation on a programme (an order's earning, a return, a burn...): its id makes it happen once,
    and it keeps the events it produced, so a retry after a failed publish sends the same events again."""

    brand_id: str
    program: str
    op_id: str
    person_id: str
    points: int = 0
    paid_minor: int = 0
    month: str | None = Field(default=None, description="an order's month (a return takes its spend off it)")
    given_back: int = Field(default=0, description="an order's points its returns have taken back so far")
    refunded_minor: int = Field(default=0, description="an order's spend its returns have taken back so far")
    level_before: str | None = Field(default=None, description="an order's: the level held before it")
    lines: dict[str, list[float]] = Field(
        default_factory=dict, description="an order's: per sku, [paid minor, points earned] (returns by line)"
    )
    asked: str | None = Field(default=None, description="an API operation's request: the same op id asks the same")
    events: list[dict[str, Any]] = Field(default_factory=list)


class OperationDoneError(CdpError):
    """The operation was applied before (its id is recorded): nothing was written."""

    def __init__(self, op_id: str) -> None:
        super().__init__(f"operation {op_id} was applied before")
        self.op_id = op_id


@dataclass
class Commit:
    """Written in one transaction: accounts (each with the version it was read at; 0 = new), new operations (which
    must not exist), updated operations (at the `given_back` they were read with), timers to add; `at`: when, on the
    engine's clock (None: the store's)."""

    accounts: list[tuple[Account, int]] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    updated: list[tuple[Operation, int]] = field(default_factory=list)
    timers: list[tuple[Account, str]] = field(default_factory=list)
    at: datetime | None = None


@dataclass(frozen=True)
class Timer:
    brand_id: str
    month: str
    program: str
    person_id: str


class AccountStore(ABC):
    @abstractmethod
    def get(self, brand_id: str, program: str, person_id: str) -> Account | None: ...

    @abstractmethod
    def operation(self, brand_id: str, program: str, op_id: str) -> Operation | None: ...

    @abstractmethod
    def commit(self, commit: Commit) -> None:
        """All or nothing. ConflictError: an account changed since it was read; OperationDoneError: an operation's
        id is recorded already."""

    @abstractmethod
    def months(self, brand_id: str, through: str) -> list[tuple[str, bool]]:
        """The months up to `through` that hold timers, oldest first, with whether their reminders went out."""

    @abstractmethod
    def timers(self, brand_id: str, month: str, limit: int, unreminded: bool = False) -> list[Timer]:
        """Up to `limit` of the month's timers (`unreminded`: only those whose reminders have not gone out)."""

    @abstractmethod
    def reminded(self, timers: Sequence[Timer]) -> None:
        """The timers' reminders went out."""

    @abstractmethod
    def done(self, timers: Sequence[Timer]) -> None:
        """The timers are handled: removed."""

    @abstractmethod
    def month_done(self, brand_id: str, month: str, reminded_only: bool, now: datetime | None = None) -> None:
        """A month's reminders went out (`reminded_only`), or all its timers are handled (the month is removed), as
        of the tick's `now`. A store may leave the month as it is for now (a timer may still be on its way): the
        next tick looks at it again."""
