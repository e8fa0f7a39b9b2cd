"""A member's account in a points programme the platform keeps, and the pure rules that move it: points earned from
orders (base rate x the line's highest multiplier), given back on returns, burned oldest first, converted, expired
at the end of the month their lot ends; levels judged on qualifying spend over a rolling window and held a minimum
time; benefits following the level.

Times are the brand's: a lot earned in December with a 12-month life ends when December of the next year ends in
the brand's time zone. Money is in minor units of the programme's earn currency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from cdp.errors import ConflictError
from cdp.org import LoyaltyProgram

NEVER = "never"  # the lot of points that do not expire


class InsufficientPointsError(ConflictError):
    """A burn or conversion asks for more points than the account holds (409)."""


class Account(BaseModel):
    """One person's account in one programme. `lots`: points left by the month they expire in ('2027-12'), or
    `never`; `spend`: qualifying spend by month ('2026-12'), net of returns."""

    brand_id: str
    program: str
    person_id: str
    balance: int = 0
    lots: dict[str, int] = Field(default_factory=dict)
    spend: dict[str, int] = Field(default_factory=dict)
    level: str | None = None
    level_until: datetime | None = None
    earned: int = 0
    burned: int = 0
    expired: int = 0
    written_off: int = Field(default=0, description="points a return took back that had been spent already")
    merged_into: str | None = None
    version: int = 0

    def qualifying_spend(self, program: LoyaltyProgram, month: str) -> int:
        first = add_months(month, 1 - program.qualifying_months)
        return sum(v for m, v in self.spend.items() if first <= m <= month)

    anchor: str | None = Field(default=None, description="the identifier the account's events are filed under")

    def due_months(self, zone: ZoneInfo) -> set[str]:
        """The months in which something of this account ends (a lot, the level's hold): its timers."""
        months = {m for m in self.lots if m != NEVER}
        if self.level_until is not None:
            months.add(month_of(self.level_until - _EPS, zone))
        return months


@dataclass
class Change:
    """What an operation did to an account: the new account, the points moved (signed) and why, a level change,
    the benefits granted and revoked."""

    account: Account
    points: int = 0
    reason: str = "purchase"
    level_from: str | None = None
    level_to: str | None = None
    direction: str | None = None  # up | down | kept
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    written_off: int = 0

    @property
    def level_changed(self) -> bool:
        return self.direction is not None


# ---- months in the brand's time zone -------------------------------------------------------------------------


def month_of(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m")


def add_months(month: str, n: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    total = year * 12 + (mon - 1) + n
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


def month_end(month: str, zone: ZoneInfo) -> datetime:
    """The instant a month ends in the zone (the first instant of the next month)."""
    nxt = add_months(month, 1)
    return datetime(int(nxt[:4]), int(nxt[5:7]), 1, tzinfo=zone)


# ---- earning and giving back -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLineIn:
    sku: str
    category: str | None
    paid_minor: int


def line_points(
    program: LoyaltyProgram, lines: list[OrderLineIn], store: str | None, local_day: date, level: str | None
) -> list[float]:
    """Each line's base points per major unit paid at its highest matching multiplier (not rounded)."""
    earn = program.earn
    if earn is None:
        return [0.0 for _ in lines]
    out = []
    for line in lines:
        times = max(
            (
                m.times
                for m in earn.multipliers
                if m.matches(sku=line.sku, category=line.category, store=store, local_day=local_day, level=level)
            ),
            default=1.0,
        )
        out.append(line.paid_minor / 100 * earn.points_per_unit * times)
    return out


def points_for(
    program: LoyaltyProgram, lines: list[OrderLineIn], store: str | None, local_day: date, level: str | None
) -> int:
    """The order's points: every line at its highest matching multiplier, rounded down once."""
    return math.floor(sum(line_points(program, lines, store, local_day, level)) + 1e-9)


def earn(
    account: Account, program: LoyaltyProgram, points: int, paid_minor: int, at: datetime, zone: ZoneInfo
) -> Change:
    """Points and qualifying spend of an order; the level goes up at once when the spend reaches the next one."""
    out = account.model_copy(deep=True)
    month = month_of(at, zone)
    if points:
        lot = add_months(month, program.expire_after_months) if program.expire_after_months else NEVER
        out.lots[lot] = out.lots.get(lot, 0) + points
        out.balance += points
        out.earned += points
    if paid_minor:
        out.spend[month] = out.spend.get(month, 0) + paid_minor
    change = Change(account=out, points=points, reason="purchase")
    _judge_level(change, program, month, zone, upgrade_only=True)
    return change


def give_back(
    account: Account,
    program: LoyaltyProgram,
    points: int,
    refund_minor: int,
    order_month: str,
    now: datetime,
    zone: ZoneInfo,
    floor_level: str | None,
) -> Change:
    """A return: its share of the order's points comes off the balance (what was spent already is written off)
    and its refund off the order month's qualifying spend. A level the order's spend raised falls back to what the
    spend left reaches, never below the level held before that order (`floor_level`)."""
    out = account.model_copy(deep=True)
    taken = min(points, out.balance)
    _take(out, taken, newest_first=True)
    out.balance -= taken
    out.earned -= taken
    out.written_off += points - taken
    if refund_minor and order_month in out.spend:
        out.spend[order_month] = max(0, out.spend[order_month] - refund_minor)
    change = Change(account=out, points=-taken, reason="return", written_off=points - taken)
    rank = {rule.level: i for i, rule in enumerate(program.levels)}
    reached = program.level_for(out.qualifying_spend(program, month_of(now, zone)))
    floor = max(rank.get(floor_level or "", -1), rank.get(reached.level if reached else "", -1))
    if program.levels and floor < rank.get(out.level or "", -1):
        new = program.levels[floor] if floor >= 0 else None
        held = program.rule_of(out.level)
        change.level_from, change.level_to, change.direction = out.level, new.level if new else None, "down"
        change.revoked = sorted(set(held.benefits if held else ()) - set(new.benefits if new else ()))
        out.level = new.level if new else None
        out.level_until = out.level_until if new else None
    return change


def credit(account: Account, program: LoyaltyProgram, points: int, at: datetime, zone: ZoneInfo, reason: str) -> Change:
    """Points granted outside an order (an offer, a conversion in, a positive adjustment): a lot like earned ones."""
    out = account.model_copy(deep=True)
    lot = add_months(month_of(at, zone), program.expire_after_months) if program.expire_after_months else NEVER
    out.lots[lot] = out.lots.get(lot, 0) + points
    out.balance += points
    out.earned += points
    return Change(account=out, points=points, reason=reason)


def burn(account: Account, points: int, reason: str = "redemption") -> Change:
    """Points spent, oldest lot first; more than the balance is refused."""
    if points > account.balance:
        raise InsufficientPointsError(
            f"the account holds {account.balance} points of programme {account.program}; {points} were asked"
        )
    out = account.model_copy(deep=True)
    _take(out, points, newest_first=False)
    out.balance -= points
    out.burned += points
    return Change(account=out, points=-points, reason=reason)


def _take(account: Account, points: int, newest_first: bool) -> None:
    order = sorted(account.lots, key=lambda m: (m == NEVER, m), reverse=newest_first)
    left = points
    for lot in order:
        if left <= 0:
            break
        used = min(left, account.lots[lot])
        account.lots[lot] -= used
        left -= used
        if account.lots[lot] == 0:
            del account.lots[lot]


# ---- time: expiry and level reviews ----------------------------------------------------------------------------


def expire(account: Account, now: datetime, zone: ZoneInfo) -> Change:
    """The lots whose month has ended by `now` expire."""
    out = account.model_copy(deep=True)
    gone = 0
    for lot in [m for m in out.lots if m != NEVER and month_end(m, zone) <= now]:
        gone += out.lots.pop(lot)
    out.balance -= gone
    out.expired += gone
    return Change(account=out, points=-gone, reason="expiry")


def review_level(account: Account, program: LoyaltyProgram, now: datetime, zone: ZoneInfo) -> Change:
    """Once the level's hold has ended: kept (renewed), raised or lowered to what the spend of the window ending with
    the hold's last month reaches; the new hold runs from that month."""
    change = Change(account=account.model_copy(deep=True))
    if account.level_until is None or account.level_until > now:
        return change
    ended = month_of(account.level_until - _EPS, zone)
    _judge_level(change, program, ended, zone, upgrade_only=False)
    if change.direction is None and change.account.level is not None:  # the same level, earned again
        change.account.level_until = _hold_end(program, ended, zone)
        change.direction, change.level_from, change.level_to = "kept", account.level, account.level
    return change


def _judge_level(change: Change, program: LoyaltyProgram, month: str, zone: ZoneInfo, upgrade_only: bool) -> None:
    account = change.account
    if not program.levels:
        return
    reached = program.level_for(account.qualifying_spend(program, month))
    new = reached.level if reached else None
    rank = {rule.level: i for i, rule in enumerate(program.levels)}
    old_rank, new_rank = rank.get(account.level or "", -1), rank.get(new or "", -1)
    if new_rank == old_rank or (upgrade_only and new_rank < old_rank):
        return
    held = program.rule_of(account.level)
    old_benefits = set(held.benefits if held else ())
    new_benefits = set(reached.benefits if reached else ())
    change.level_from, change.level_to = account.level, new
    change.direction = "up" if new_rank > old_rank else "down"
    change.granted = sorted(new_benefits - old_benefits)
    change.revoked = sorted(old_benefits - new_benefits)
    account.level = new
    account.level_until = _hold_end(program, month, zone) if new else None


def _hold_end(program: LoyaltyProgram, month: str, zone: ZoneInfo) -> datetime:
    """A level reached (or renewed) in a month is held until the end of the month `level_hold_months` later."""
    return month_end(add_months(month, program.level_hold_months), zone)


def expiring(account: Account, month: str) -> int:
    """The points that expire at the end of `month`."""
    return account.lots.get(month, 0)


def level_ends_in(account: Account, program: LoyaltyProgram, month: str, zone: ZoneInfo) -> bool:
    """Whether the level's hold ends at the end of `month` and the window's spend would not keep it."""
    if account.level is None or account.level_until is None or month_of(account.level_until - _EPS, zone) != month:
        return False
    reached = program.level_for(account.qualifying_spend(program, month))
    rank = {rule.level: i for i, rule in enumerate(program.levels)}
    return rank.get(reached.level if reached else "", -1) < rank.get(account.level, -1)


_EPS = timedelta(microseconds=1)


# ---- merges -----------------------------------------------------------------------------------------------------


def absorb(survivor: Account, loser: Account, program: LoyaltyProgram) -> Account:
    """A merged person's account folded into the survivor's: points, lots and spend add up; the higher level and the
    later hold stay (the merge rule the profile uses for levels)."""
    out = survivor.model_copy(deep=True)
    for lot, points in loser.lots.items():
        out.lots[lot] = out.lots.get(lot, 0) + points
    for month, spent in loser.spend.items():
        out.spend[month] = out.spend.get(month, 0) + spent
    out.balance += loser.balance
    out.earned += loser.earned
    out.burned += loser.burned
    out.expired += loser.expired
    out.written_off += loser.written_off
    rank = {rule.level: i for i, rule in enumerate(program.levels)}
    if rank.get(loser.level or "", -1) > rank.get(out.level or "", -1):
        out.level = loser.level
    if loser.level_until and (out.level_until is None or loser.level_until > out.level_until):
        out.level_until = loser.level_until
    return out
