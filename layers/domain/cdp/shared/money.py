"""Money as people read it: integer minor units shown in the currency's own decimals (ISO 4217 exponents)."""

from __future__ import annotations

# Currencies whose minor unit is not 1/100 (ISO 4217); every other currency the product takes has two decimals.
EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def format_money(minor: int, currency: str) -> str:
    """`1249400, "CNY"` -> `"12,494.00 CNY"`; negative amounts keep their sign."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**digits)
    text = f"{whole:,}" + (f".{part:0{digits}d}" if digits else "")
    return f"{sign}{text} {currency.upper()}"
