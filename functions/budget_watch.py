"""Budget pools running low, counted by the functions that draw on them (the stack's `BudgetPoolLow` alarm).

One count per draw that leaves a pool (or a refused draw that finds it) under `cdp.budgets.ledger.LOW_SHARE` of
its total, with no pool dimension: pool ids are data (a brand defines pools per campaign, offer form or store), so
a dimension per pool would add a custom metric for every campaign and could have no alarm declared for it in the
stack. The warning names the brand and the pool to top up. A count of draws, not a gauge of what is left: the alarm
fires while money is still being drawn from a nearly empty pool, and a spent pool of a campaign that ended stays
quiet.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from cdp.budgets.ledger import PoolBalance
from cdp.observability import logger, metrics
from cdp.topology import BUDGET_POOL_LOW_METRIC


def count_low_pool(balance: PoolBalance) -> None:
    logger.warning(
        "budget pool running low",
        brand_id=balance.pool.brand_id,
        pool_id=balance.pool.pool_id,
        available_minor=balance.available_minor,
        total_minor=balance.total_minor,
    )
    metrics.add_metric(name=BUDGET_POOL_LOW_METRIC, unit=MetricUnit.Count, value=1)
