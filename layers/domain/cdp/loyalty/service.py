"""The loyalty engine: for each programme the platform keeps, orders earn points and qualifying spend, returns give
them back, members burn and convert points through the API, and the schedule's tick expires lots, reviews levels and
sends reminders before points or a level expire. Every change becomes canonical events (`points_changed`,
`level_changed`, `benefit_changed`, `loyalty_expiring`) filed under the member's anchor identifier, so the profile,
the tag engine and journeys read loyalty like any other behaviour.

Persons merge: an account is kept per person, and a survivor's operation first folds the accounts of the persons
merged into them (the profile's `merged_from`), so points earned before the merge are neither lost nor counted twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError

from cdp.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.identifiers.model import Identifier
from cdp.identity.events import ResolvedOrder
from cdp.identity.service import backoff
from cdp.ingest.auth import LOYALTY_READ_SCOPE, LOYALTY_WRITE_SCOPE, authorize
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.ingest.ports import ApiClient
from cdp.ingest.service import packed
from cdp.loyalty import accounts as rules
from cdp.loyalty.accounts import Account, Change, OrderLineIn
from cdp.loyalty.ports import AccountStore, Commit, Operation, OperationDoneError, Timer
from cdp.observability import logger
from cdp.org import LoyaltyProgram, OrgDirectory
from cdp.profile.ports import ProfileReader
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now

ATTEMPTS = 5
DUE_BATCH = 500
OpId = str


class PointsRequest(BaseModel):
    """A burn, an adjustment or a conversion asked through the API; `op_id` makes it happen once."""

    brand_id: str = Field(min_length=1, max_length=64)
    person_id: str = Field(min_length=1, max_length=128)
    points: int = Field(ge=-(10**9), le=10**9, description="burn/convert: > 0; adjust: signed, not 0")
    op_id: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:#@/+=-]+$", description="sent again: the same operation"
    )
    to_program: str | None = Field(default=None, max_length=64, description="convert: the programme to convert into")
    note: str | None = Field(default=None, max_length=500)


class LotView(BaseModel):
    expires_at: datetime | None
    points: int


class AccountView(BaseModel):
    program: str
    balance: int
    lots: list[LotView]
    level: str | None
    level_until: datetime | None
    qualifying_spend_minor: int
    next_level: str | None
    spend_to_next_minor: int | None
    benefits: list[str]
    earned: int
    burned: int
    expired: int


class Accounts(BaseModel):
    brand_id: str
    person_id: str
    accounts: list[AccountView]


class OperationResult(BaseModel):
    program: str
    person_id: str
    points: int = Field(description="signed: what the operation moved")
    balance: int
    new: bool = Field(description="false: the op_id was applied before (nothing moved again)")


class ProgramList(BaseModel):
    brand_id: str
    programs: dict[str, LoyaltyProgram]


@dataclass(frozen=True)
class DueReport:
    reminded: int = 0
    expired_points: int = 0
    reviewed: int = 0


def authorize_loyalty(client: ApiClient, org: OrgDirectory, brand_id: str, scope: str) -> ApiClient:
    """Programme-wide work: the key's scope must hold the whole brand (a store's key cannot burn a member's points
    or read their account across the brand)."""
    authorize(client, scope)
    if not client.org_scope.holds_brand(org, brand_id):
        raise ForbiddenError(f"the key's scope {client.org_scope.label} does not hold brand {brand_id}")
    return client


class LoyaltyService:
    def __init__(
        self,
        store: AccountStore,
        profiles: ProfileReader,
        publisher: EventPublisher,
        org: OrgDirectory,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store, self.profiles, self.publisher, self.org, self.now = store, profiles, publisher, org, now

    # ---- what the API reads ------------------------------------------------------------------------------------

    def programs(self, brand_id: str, client: ApiClient) -> ProgramList:
        authorize_loyalty(client, self.org, brand_id, LOYALTY_READ_SCOPE)
        return ProgramList(brand_id=brand_id, programs=dict(self.org.brand(brand_id).loyalty.programs))

    def accounts(self, brand_id: str, person_id: str, client: ApiClient) -> Accounts:
        authorize_loyalty(client, self.org, brand_id, LOYALTY_READ_SCOPE)
        person, merged_from, _ = self._person(brand_id, person_id)
        zone = self._zone(brand_id)
        month = rules.month_of(self.now(), zone)
        views = []
        for name, program in self._kept(brand_id).items():
            account = self._folded(brand_id, name, person, merged_from)[0]
            if account is None:
                continue
            spend = account.qualifying_spend(program, month)
            rule = program.rule_of(account.level)
            held = rule.qualifying_spend_minor if rule else -1  # the next level is above the one held
            above = [r for r in program.levels if r.qualifying_spend_minor > max(spend, held)]
            views.append(
                AccountView(
                    program=name,
                    balance=account.balance,
                    lots=[
                        LotView(expires_at=None if m == rules.NEVER else rules.month_end(m, zone), points=p)
                        for m, p in sorted(account.lots.items(), key=lambda kv: (kv[0] == rules.NEVER, kv[0]))
                    ],
                    level=account.level,
                    level_until=account.level_until,
                    qualifying_spend_minor=spend,
                    next_level=above[0].level if above else None,
                    spend_to_next_minor=above[0].qualifying_spend_minor - spend if above else None,
                    benefits=list(rule.benefits) if rule else [],
                    earned=account.earned,
                    burned=account.burned,
                    expired=account.expired,
                )
            )
        return Accounts(brand_id=brand_id, person_id=person, accounts=views)

    # ---- what members and the brand's staff do through the API -------------------------------------------------

    def burn(self, program: str, request: PointsRequest, client: ApiClient) -> OperationResult:
        authorize_loyalty(client, self.org, request.brand_id, LOYALTY_WRITE_SCOPE)
        if request.points <= 0:
            raise InvalidInputError("a burn takes a positive number of points", "points")
        return self._manual(program, request, "burn", lambda a, p, z: rules.burn(a, request.points))

    def adjust(self, program: str, request: PointsRequest, client: ApiClient) -> OperationResult:
        authorize_loyalty(client, self.org, request.brand_id, LOYALTY_WRITE_SCOPE)
        if request.points == 0:
            raise InvalidInputError("an adjustment moves points: give a signed number, not 0", "points")

        def apply(account: Account, prog: LoyaltyProgram, zone: ZoneInfo) -> Change:
            if request.points > 0:
                return rules.credit(account, prog, request.points, self.now(), zone, "adjustment")
            return rules.burn(account, -request.points, "adjustment")

        return self._manual(program, request, "adjust", apply)

    def convert(self, program: str, request: PointsRequest, client: ApiClient) -> OperationResult:
        """Points of one programme into another the platform keeps, at the rate the programme states: both accounts
        move in one transaction."""
        authorize_loyalty(client, self.org, request.brand_id, LOYALTY_WRITE_SCOPE)
        source = self._program(request.brand_id, program)
        target_name = request.to_program
        if not target_name or target_name not in source.converts_to:
            allowed = sorted(source.converts_to) or "none"
            raise InvalidInputError(f"programme {program} converts into {allowed}", "to_program")
        give, get = source.converts_to[target_name]
        if request.points <= 0 or request.points % give:
            raise InvalidInputError(f"convert a positive multiple of {give} points ({give} give {get})", "points")
        target = self._program(request.brand_id, target_name)
        person, merged_from, anchor = self._person(request.brand_id, request.person_id)
        zone = self._zone(request.brand_id)
        op_id = f"convert:{request.op_id}"
        for attempt in range(1, ATTEMPTS + 1):
            done = self._replayed(request.brand_id, program, op_id, person, _asked(request))
            if done is not None:
                return done
            out_commit, source_account, source_stored = self._begin(
                request.brand_id, program, person, merged_from, anchor
            )
            in_commit, target_account, target_stored = self._begin(
                request.brand_id, target_name, person, merged_from, anchor
            )
            taken = rules.burn(source_account, request.points, "conversion")
            given = rules.credit(target_account, target, request.points // give * get, self.now(), zone, "conversion")
            events = self._events(request.brand_id, program, person, op_id, taken, anchor) + self._events(
                request.brand_id, target_name, person, f"{op_id}:in", given, anchor
            )
            commit = Commit(accounts=out_commit.accounts + in_commit.accounts)
            self._finish(commit, taken, source_stored, zone)
            self._finish(commit, given, target_stored, zone)
            commit.operations.append(
                Operation(
                    brand_id=request.brand_id,
                    program=program,
                    op_id=op_id,
                    person_id=person,
                    points=taken.points,
                    events=events,
                    asked=_asked(request),
                )
            )
            if self._commit(commit, attempt):
                self._publish(events, op_id)
                return OperationResult(
                    program=program, person_id=person, points=taken.points, balance=taken.account.balance, new=True
                )
        return self._settled(request.brand_id, program, op_id, person, _asked(request))

    def grant(self, brand_id: str, program: str, person_id: str, points: int, op_id: str) -> OperationResult:
        """Points an offer grants (cdp.offers), as a lot of the programme's account: once per `op_id`."""
        request = PointsRequest(brand_id=brand_id, person_id=person_id, points=points, op_id=op_id)
        return self._manual(
            program, request, "grant", lambda a, p, z: rules.credit(a, p, points, self.now(), z, "bonus")
        )

    # ---- orders and returns (cdp.identity publishes them resolved) ---------------------------------------------

    def on_order(self, resolved: ResolvedOrder) -> list[OperationResult]:
        """Points and qualifying spend for an order (once per programme and order), or points given back for a
        return (once per return event)."""
        event = parse_event(resolved.event)
        out = []
        for name, program in self._kept(event.brand_id).items():
            result = self._order_in(event, name, program, resolved)
            if result is not None:
                out.append(result)
        return out

    def _order_in(
        self, event: CanonicalEvent, name: str, program: LoyaltyProgram, resolved: ResolvedOrder
    ) -> OperationResult | None:
        props: Any = event.properties
        earn = program.earn
        zone = self._zone(event.brand_id)
        # an order dated ahead of the clock earns as of now: no lot or level hold reaching into the future
        at = min(event.occurred_at, self.now())
        if event.event_type == "order_placed":
            if earn is None or props.currency != earn.currency:
                return None
            op_id, order_op = f"order:{props.order_id}", None
        elif event.event_type == "order_returned":
            op_id = f"return:{event.source.value}:{event.event_id}"  # event ids are unique per source
            order_op = self.store.operation(event.brand_id, name, f"order:{props.order_id}")
            if order_op is None:
                # never counted (before the programme, another currency) or not applied yet: nothing to give back
                logger.info("a return of an order the programme did not count", order_id=props.order_id)
                return None
        else:
            return None
        person, merged_from, anchor = self._survivor(event.brand_id, name, resolved)
        if order_op is not None and order_op.person_id not in (person, *merged_from):
            return None  # another person's order
        for attempt in range(1, ATTEMPTS + 1):
            done = self._replayed(event.brand_id, name, op_id, person)
            if done is not None:
                return done
            commit, account, stored = self._begin(event.brand_id, name, person, merged_from, anchor)
            if order_op is None:
                lines = _paid_lines(props)
                local_day = at.astimezone(zone).date()
                line_points = rules.line_points(program, lines, event.store_id, local_day, account.level)
                points = rules.points_for(program, lines, event.store_id, local_day, account.level)
                change = rules.earn(account, program, points, props.total_minor, at, zone)
                by_sku: dict[str, list[float]] = {}
                for line, earned in zip(lines, line_points, strict=True):
                    paid_and_points = by_sku.setdefault(line.sku, [0, 0.0])
                    paid_and_points[0] += line.paid_minor
                    paid_and_points[1] += earned
                operation = Operation(
                    brand_id=event.brand_id,
                    program=name,
                    op_id=op_id,
                    person_id=person,
                    points=points,
                    paid_minor=props.total_minor,
                    month=rules.month_of(at, zone),
                    level_before=account.level,
                    lines=by_sku,
                )
            else:
                order_op = self.store.operation(event.brand_id, name, order_op.op_id) or order_op
                owed, share = _owed(order_op, props.refund_minor, props.skus)
                change = rules.give_back(
                    account, program, owed, share, order_op.month or "", self.now(), zone, order_op.level_before
                )
                operation = Operation(
                    brand_id=event.brand_id, program=name, op_id=op_id, person_id=person, points=change.points
                )
                moved = {"given_back": order_op.given_back + owed, "refunded_minor": order_op.refunded_minor + share}
                commit.updated.append((order_op.model_copy(update=moved), order_op.given_back))
            operation.events = self._events(event.brand_id, name, person, op_id, change, account.anchor, at=at)
            self._finish(commit, change, stored, zone)
            commit.operations.append(operation)
            if self._commit(commit, attempt):
                self._publish(operation.events, op_id)
                return OperationResult(
                    program=name, person_id=person, points=change.points, balance=change.account.balance, new=True
                )
        return self._settled(event.brand_id, name, op_id, person)

    def _survivor(self, brand_id: str, program: str, resolved: ResolvedOrder) -> tuple[str, list[str], str | None]:
        """The person an order earns for: as identity resolved it, unless their account was folded into a
        survivor's since (a merge between resolving and earning): then the survivor, as the profile says now."""
        stored = self.store.get(brand_id, program, resolved.person_id)
        if stored is None or not stored.merged_into:
            return resolved.person_id, list(resolved.merged_from), resolved.anchor
        return self._person(brand_id, resolved.person_id)

    # ---- time -------------------------------------------------------------------------------------------------

    def run_due(self, now: datetime | None = None, limit: int = DUE_BATCH) -> DueReport:
        """The tick: in each brand keeping a programme, reminders for what ends within the reminder lead, then
        lots expired and levels reviewed for the months that have ended (at most `limit` accounts a call; the rest
        at the next tick). One account failing is logged and tried again at the next tick; the others go on."""
        now = now or self.now()
        reminded = expired = reviewed = 0
        for brand_id in sorted(self.org.brands):
            kept = self._kept(brand_id)
            if not kept:
                continue
            zone = self._zone(brand_id)
            lead = max(p.remind_days_before for p in kept.values())
            for month, reminders_sent in self.store.months(brand_id, rules.month_of(now + timedelta(days=lead), zone)):
                if limit <= 0:
                    return DueReport(reminded, expired, reviewed)
                if rules.month_end(month, zone) <= now:
                    handled, gone, looked = self._close_month(brand_id, month, kept, now, zone, limit)
                    expired, reviewed, limit = expired + gone, reviewed + looked, limit - handled
                elif not reminders_sent:
                    sent, handled = self._remind(brand_id, month, kept, now, zone, limit)
                    reminded, limit = reminded + sent, limit - handled
        return DueReport(reminded, expired, reviewed)

    def _remind(
        self, brand_id: str, month: str, kept: dict[str, LoyaltyProgram], now: datetime, zone: ZoneInfo, limit: int
    ) -> tuple[int, int]:
        """Reminders for the month's timers not reminded yet, up to `limit`: (events sent, timers handled)."""
        end = rules.month_end(month, zone)
        timers = self.store.timers(brand_id, month, limit=limit, unreminded=True)
        sent, waiting, handled = 0, False, []
        for timer in timers:
            program = kept.get(timer.program)
            if program is not None and end - timedelta(days=program.remind_days_before) > now:
                waiting = True  # this programme's lead is shorter: a later tick
                continue
            try:
                sent += self._remind_one(timer, program, month, end, now, zone) if program else 0
            except Exception:
                logger.exception("a loyalty reminder failed", person_id=timer.person_id, month=month)
                waiting = True
                continue
            handled.append(timer)
        self.store.reminded(handled)
        if not waiting and len(timers) < limit:
            self.store.month_done(brand_id, month, reminded_only=True, now=now)
        return sent, len(timers)

    def _remind_one(
        self, timer: Timer, program: LoyaltyProgram, month: str, end: datetime, now: datetime, zone: ZoneInfo
    ) -> int:
        account = self.store.get(timer.brand_id, timer.program, timer.person_id)
        if account is None or account.merged_into:
            return 0
        events: list[tuple[str, dict[str, Any]]] = []
        points = rules.expiring(account, month)
        if points:
            events.append(("points", {"points": points}))
        if rules.level_ends_in(account, program, month, zone):
            events.append(("level", {"level": account.level}))
        raws = [
            self._raw(
                account,
                f"remind:{month}:{what}",
                "loyalty_expiring",
                {"program": timer.program, "what": what, **extra, "expires_at": end.isoformat()},
                now,
            )
            for what, extra in events
        ]
        self._publish([r for r in raws if r], f"loyalty-remind-{month}")
        return len(raws)

    def _close_month(
        self,
        brand_id: str,
        month: str,
        kept: dict[str, LoyaltyProgram],
        now: datetime,
        zone: ZoneInfo,
        limit: int,
    ) -> tuple[int, int, int]:
        timers = self.store.timers(brand_id, month, limit=limit)
        gone = looked = 0
        handled = []
        for timer in timers:
            program = kept.get(timer.program)
            try:
                moved, changed = self._due_one(timer, program, now, zone) if program else (0, 0)
            except Exception:
                logger.exception("a loyalty expiry failed", person_id=timer.person_id, month=month)
                continue
            gone, looked = gone + moved, looked + changed
            handled.append(timer)
        self.store.done(handled)
        if len(timers) < limit and len(handled) == len(timers):
            self.store.month_done(brand_id, month, reminded_only=False, now=now)
        return len(timers), gone, looked

    def _due_one(self, timer: Timer, program: LoyaltyProgram, now: datetime, zone: ZoneInfo) -> tuple[int, int]:
        op_id = f"due:{timer.month}"
        for attempt in range(1, ATTEMPTS + 1):
            account = self.store.get(timer.brand_id, timer.program, timer.person_id)
            if account is None or account.merged_into:
                return 0, 0
            expired = rules.expire(account, now, zone)
            reviewed = rules.review_level(expired.account, program, now, zone)
            if not expired.points and not reviewed.level_changed:
                return 0, 0
            change = Change(
                account=reviewed.account,
                points=expired.points,
                reason="expiry",
                level_from=reviewed.level_from,
                level_to=reviewed.level_to,
                direction=reviewed.direction,
                granted=reviewed.granted,
                revoked=reviewed.revoked,
            )
            events = self._events(timer.brand_id, timer.program, timer.person_id, op_id, change, account.anchor, now)
            commit = Commit(accounts=[(change.account, account.version)], at=now)
            self._finish(commit, change, account, zone)  # the stored account itself: nothing folded
            if self._commit(commit, attempt):
                self._publish(events, f"loyalty-{op_id}")
                return -expired.points, int(reviewed.level_changed)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _manual(
        self,
        program_name: str,
        request: PointsRequest,
        kind: str,
        apply: Callable[[Account, LoyaltyProgram, ZoneInfo], Change],
    ) -> OperationResult:
        program = self._program(request.brand_id, program_name)
        person, merged_from, anchor = self._person(request.brand_id, request.person_id)
        zone = self._zone(request.brand_id)
        op_id = f"{kind}:{request.op_id}"
        for attempt in range(1, ATTEMPTS + 1):
            done = self._replayed(request.brand_id, program_name, op_id, person, _asked(request))
            if done is not None:
                return done
            commit, account, stored = self._begin(request.brand_id, program_name, person, merged_from, anchor)
            change = apply(account, program, zone)
            events = self._events(request.brand_id, program_name, person, op_id, change, account.anchor)
            self._finish(commit, change, stored, zone)
            commit.operations.append(
                Operation(
                    brand_id=request.brand_id,
                    program=program_name,
                    op_id=op_id,
                    person_id=person,
                    points=change.points,
                    events=events,
                    asked=_asked(request),
                )
            )
            if self._commit(commit, attempt):
                self._publish(events, op_id)
                return OperationResult(
                    program=program_name,
                    person_id=person,
                    points=change.points,
                    balance=change.account.balance,
                    new=True,
                )
        return self._settled(request.brand_id, program_name, op_id, person, _asked(request))

    def _replayed(
        self, brand_id: str, program: str, op_id: str, person: str, asked: str | None = None
    ) -> OperationResult | None:
        """An operation applied before: its events are sent again (a failed publish is made good; the same event
        ids are filed once) and its result answered. An op id used before for another person or amount is a 409."""
        done = self.store.operation(brand_id, program, op_id)
        if done is None:
            return None
        if asked is not None and done.asked != asked:
            raise ConflictError(f"op_id {op_id.partition(':')[2]} was used for another operation; name this one anew")
        self._publish(done.events, op_id)
        account = self.store.get(brand_id, program, done.person_id)
        balance = account.balance if account else 0
        return OperationResult(
            program=program, person_id=done.person_id, points=done.points, balance=balance, new=False
        )

    def _settled(
        self, brand_id: str, program: str, op_id: str, person: str, asked: str | None = None
    ) -> OperationResult:
        """After the last attempt: applied by a concurrent call (its answer), else the conflict goes to the caller."""
        done = self._replayed(brand_id, program, op_id, person, asked)
        if done is None:
            raise ConflictError(f"the loyalty account kept changing meanwhile ({ATTEMPTS} attempts); try again")
        return done

    def _begin(
        self, brand_id: str, program: str, person: str, merged_from: Sequence[str], anchor: str | None
    ) -> tuple[Commit, Account, Account]:
        """The person's account with the accounts of the persons merged into them folded in (those are closed in the
        same commit), and the person's account as stored (what timers it has already)."""
        stored_account = self.store.get(brand_id, program, person)
        account, losers = self._folded(brand_id, program, person, merged_from, stored_account)
        commit = Commit()
        stored_version = account.version if account else 0
        base = account or Account(brand_id=brand_id, program=program, person_id=person)
        for loser in losers:
            commit.accounts.append((loser.model_copy(update={"merged_into": person}), loser.version))
        if anchor:
            base = base.model_copy(update={"anchor": anchor})
        commit.accounts.append((base, stored_version))
        stored = stored_account or Account(brand_id=brand_id, program=program, person_id=person)
        return commit, base, stored

    def _folded(
        self,
        brand_id: str,
        program: str,
        person: str,
        merged_from: Sequence[str],
        stored: Account | None = None,
    ) -> tuple[Account | None, list[Account]]:
        account = stored if stored is not None else self.store.get(brand_id, program, person)
        losers = [
            loser
            for other in merged_from
            if (loser := self.store.get(brand_id, program, other)) is not None and not loser.merged_into
        ]
        if not losers:
            return account, []
        rule = self._program(brand_id, program)
        folded = account or Account(brand_id=brand_id, program=program, person_id=person)
        for loser in losers:
            folded = rules.absorb(folded, loser, rule)
        folded.version = account.version if account else 0
        return folded, losers

    def _finish(self, commit: Commit, change: Change, before: Account, zone: ZoneInfo) -> None:
        """The account's new state replaces the one read, with a timer for each month newly holding something."""
        commit.accounts = [
            (
                change.account
                if acc.person_id == change.account.person_id and acc.program == change.account.program
                else acc,
                version,
            )
            for acc, version in commit.accounts
        ]
        for month in sorted(change.account.due_months(zone) - before.due_months(zone)):
            commit.timers.append((change.account, month))
        commit.at = commit.at or self.now()

    def _commit(self, commit: Commit, attempt: int) -> bool:
        """True: written; False: a concurrent change (read again and retry)."""
        try:
            self.store.commit(commit)
            return True
        except OperationDoneError:
            return False  # applied by a concurrent call: the next attempt finds and answers it
        except ConflictError:
            if attempt == ATTEMPTS:
                raise
            backoff(attempt)
            return False

    def _events(
        self,
        brand_id: str,
        program: str,
        person: str,
        op_id: str,
        change: Change,
        anchor: str | None,
        at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        account = change.account.model_copy(update={"anchor": anchor or change.account.anchor})
        at = at or self.now()
        raws = []
        if change.points:
            points: dict[str, Any] = {"program": program, "delta": change.points, "reason": change.reason}
            raws.append(self._raw(account, op_id, "points_changed", points | {"balance_after": account.balance}, at))
        joined = change.level_from is None and change.level_to == _entry_level(self.org, account)
        if change.direction is not None and change.level_to is not None and not joined:
            level = {
                "program": program,
                "level": change.level_to,
                "previous_level": change.level_from,
                "direction": change.direction,
                "valid_until": account.level_until.isoformat() if account.level_until else None,
            }
            raws.append(self._raw(account, f"{op_id}:level", "level_changed", level, at))
        for benefit, granted in [*((b, True) for b in change.granted), *((b, False) for b in change.revoked)]:
            props = {"benefit_id": benefit, "granted": granted, "program": program}
            raws.append(self._raw(account, f"{op_id}:benefit:{benefit}", "benefit_changed", props, at))
        return [r for r in raws if r]

    def _raw(
        self, account: Account, op_id: str, event_type: str, properties: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        if account.anchor is None:
            logger.warning("no identifier to file a loyalty event under", person_id=account.person_id)
            return {}
        digest = hashlib.sha256(f"{account.brand_id}#{account.program}#{account.person_id}#{op_id}".encode())
        return {
            "event_id": f"loyalty-{digest.hexdigest()[:40]}",
            "event_type": event_type,
            "source": "cdp",
            "brand_id": account.brand_id,
            "occurred_at": at.isoformat(),
            "identifiers": [Identifier.from_key(account.anchor).model_dump(mode="json", exclude_none=True)],
            "properties": {k: v for k, v in properties.items() if v is not None},
            "context": {"program": account.program},
        }

    def _publish(self, raws: Sequence[dict[str, Any]], correlation_id: str) -> None:
        events = []
        for raw in raws:
            if not raw:
                continue
            try:
                events.append(parse_event(raw, phone_region=self.org.brand(raw["brand_id"]).phone_region))
            except ValidationError as exc:  # the account moved; the timeline misses this one (logged to mend)
                logger.error("a loyalty event did not validate", event_id=raw.get("event_id"), error=str(exc))
        if events:
            self.publisher.publish(packed(events), correlation_id[:200])

    def _person(self, brand_id: str, person_id: str) -> tuple[str, list[str], str | None]:
        profile = self.profiles.get(person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {person_id} in brand {brand_id}")
        return profile.person_id, list(profile.merged_from), self.org.brand(brand_id).rules.anchor(profile.identifiers)

    def _kept(self, brand_id: str) -> dict[str, LoyaltyProgram]:
        programs = self.org.brand(brand_id).loyalty.programs
        return {name: p for name, p in programs.items() if p.system_of_record == "platform"}

    def _program(self, brand_id: str, program: str) -> LoyaltyProgram:
        found = self._kept(brand_id).get(program)
        if found is None:
            known = sorted(self._kept(brand_id)) or "none"
            raise NotFoundError(f"brand {brand_id} keeps no programme {program} (the platform keeps: {known})")
        return found

    def _zone(self, brand_id: str) -> ZoneInfo:
        return ZoneInfo(self.org.brand(brand_id).timezone)


def _entry_level(org: OrgDirectory, account: Account) -> str | None:
    """A member's first order puts them at the entry level: no event (the account shows it; one event less a member)."""
    program = org.brand(account.brand_id).loyalty.programs.get(account.program)
    return program.levels[0].level if program and program.levels else None


def _asked(request: PointsRequest) -> str:
    """What an API operation asked, kept with it: an op id sent again must ask the same."""
    return f"{request.person_id}:{request.points}:{request.to_program or ''}"


def _owed(order: Operation, refund_minor: int, skus: Sequence[str]) -> tuple[int, int]:
    """(points, spend) a return takes back: the returned lines' points in proportion to the refund (the whole order's
    when the return names no line the order had), never more than the order has left to give back or refund."""
    share = min(refund_minor, max(0, order.paid_minor - order.refunded_minor))
    named = [order.lines[sku] for sku in dict.fromkeys(skus) if sku in order.lines]
    paid, points = (sum(n[0] for n in named), sum(n[1] for n in named)) if named else (order.paid_minor, order.points)
    owed = math.floor(points * min(1.0, share / paid) + 1e-9) if paid else 0
    return min(owed, order.points - order.given_back), share


def _paid_lines(props: Any) -> list[OrderLineIn]:
    """The order's lines at what was paid for them: the order's discount spread over the lines by their value."""
    gross = sum(line.quantity * line.unit_price_minor for line in props.lines)
    out = []
    for line in props.lines:
        value = line.quantity * line.unit_price_minor
        paid = value * props.total_minor // gross if gross else 0
        out.append(OrderLineIn(sku=line.sku, category=line.category, paid_minor=paid))
    return out
