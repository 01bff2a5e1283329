"""Money as people read it, and as results carry it.

Costs are computed in ``Decimal`` (``pricing.py``) and stored as floats;
a float sum such as 0.0005187000000000001 is noise, not information. At the
edges: ``format_usd`` writes an amount for a person (the same rule in every
text, report, error and table), ``clean_floats`` rounds every float of a
structured result to 12 significant digits (far below a micro-dollar on any
real amount, far above float noise).

A leaf: imports nothing from the package.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

_SIGNIFICANT = Context(prec=12, rounding=ROUND_HALF_EVEN)
_READABLE = Context(prec=3, rounding=ROUND_HALF_EVEN)


def format_usd(value: float | Decimal | None) -> str:
    """``$1,234.57``, ``$7.81``; below a dollar three significant digits
    (``$0.519``, ``$0.0123``, ``$0.000037``), never an exponent; ``n/a`` for None."""
    if value is None:
        return "n/a"
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    text = format(_READABLE.plus(amount), "f")
    if len(text.split(".")[1]) < 2:
        text = format(amount, ".2f")
    return f"{sign}${text}"


def clean_float(value: float) -> float:
    return float(_SIGNIFICANT.plus(Decimal(repr(value))))


def clean_floats(value: Any) -> Any:
    """``value`` with every float rounded to 12 significant digits (dicts and lists walked)."""
    if isinstance(value, float):
        return clean_float(value) if value == value and value not in (float("inf"), float("-inf")) else value
    if isinstance(value, dict):
        return {k: clean_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_floats(v) for v in value]
    return value
