"""A campaign run's messages paid from its budget pool: the run reserved their worst case at selection (the plan
hold `cdp.budgets.ledger.message_plan_id`); each send batch commits what its messages cost from it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cdp.budgets.ledger import BudgetExhaustedError, BudgetLedger, HoldError, message_plan_id
from cdp.channels.ports import MessageSpending
from cdp.observability import logger
from cdp.shared.time import utc_now


class PlanSpending(MessageSpending):
    def __init__(self, budgets: BudgetLedger, now: Callable[[], datetime] = utc_now) -> None:
        self.budgets, self.now = budgets, now

    def spend(self, brand_id: str, run_id: str, pool_id: str, amount_minor: int, op_id: str) -> None:
        plan = message_plan_id(run_id)
        try:
            self.budgets.commit(brand_id, plan, op_id, {pool_id: amount_minor}, self.now())
        except HoldError as exc:
            # the messages have left: the plan is gone (released meanwhile) or short, so the cost is charged to the
            # pool itself; if even that is refused, it is logged as spent and not counted
            logger.warning("a batch's message cost is charged to its pool, not its plan", plan=plan, error=str(exc))
            try:
                self.budgets.charge(brand_id, f"{plan}:{op_id}", {pool_id: amount_minor}, self.now())
            except (BudgetExhaustedError, HoldError) as refused:
                logger.error(
                    "a batch's message cost was not counted", plan=plan, amount=amount_minor, error=str(refused)
                )
