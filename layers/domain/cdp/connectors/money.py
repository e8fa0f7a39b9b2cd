"""Channels send money in major units (12.5 = 12 yuan 50 fen); canonical events carry minor units."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not 1/100 (the common ones a retail brand meets)
_EXPONENT = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3}


def to_minor(amount: object, currency: str) -> int:
    """Major units (number or numeric string) to minor units, rounded half up; ValueError names the bad value."""
    if isinstance(amount, bool) or amount is None:
        raise ValueError(f"not an amount: {amount!r}")
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"amount must be a non-negative number, got {amount!r}")
    scale = Decimal(10) ** _EXPONENT.get(currency.upper(), 2)
    return int((value * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))
