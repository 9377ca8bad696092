"""Capital and annual sales as owners state them: mostly micro, a few small and medium within PP 7/2021's bounds."""

from __future__ import annotations

import math
from collections.abc import Callable

from berdaya.dataset.lookup import Rand

_JUTA = 1_000_000
# Micro: monthly sales lognormal, median Rp 5.5 juta; annual kept within Rp 12 juta .. 1.5 miliar.
_MICRO_MONTHLY_MU, _MICRO_MONTHLY_SIGMA = math.log(5.5 * _JUTA), 0.9
_MICRO_SALES = (12 * _JUTA, 1_500 * _JUTA)
# Small and medium (PP 7/2021 art. 35): annual sales > 2 .. 15 miliar and > 15 .. 50 miliar; capital > 1 .. 5 and
# > 5 .. 10 miliar. Drawn log-uniformly inside, clear of the ceilings.
_SALES_RANGE = {1: (2_100 * _JUTA, 14_000 * _JUTA), 2: (15_500 * _JUTA, 48_000 * _JUTA)}
_CAPITAL_RANGE = {1: (1_100 * _JUTA, 4_800 * _JUTA), 2: (5_200 * _JUTA, 9_600 * _JUTA)}
_SMALL, _MEDIUM = 0.08, 0.01
CAPITAL_ONLY = 0.15  # new businesses give capital, not sales
_CAPITAL_TOO = 0.35  # running businesses that also give capital
_DOTTED = 0.10  # sales written 150.000.000


def _log_uniform(u: float, low: int, high: int, step: int) -> int:
    return round(low * (high / low) ** u / step) * step


def _dotted(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


def capital_and_sales(rand: Rand, gauss: Callable[[], float]) -> tuple[str, str, bool]:
    """(capital, annual sales, whether the business is new), as text: the scale first, then sales for a running
    business or capital only for a new one."""
    u = rand()
    scale = 2 if u < _MEDIUM else (1 if u < _MEDIUM + _SMALL else 0)
    if rand() < CAPITAL_ONLY:
        return str(_starting_capital(rand, gauss, scale)), "", True
    if scale:
        low, high = _SALES_RANGE[scale]
        sales = _log_uniform(rand(), low, high, 10 * _JUTA)
    else:  # written out here, not in a helper, for most rows are micro and this runs a million times
        monthly = math.exp(_MICRO_MONTHLY_MU + _MICRO_MONTHLY_SIGMA * gauss())
        if rand() < 0.6:  # "5 juta a month": twelve times a round monthly figure
            step = 100_000 if monthly < 5 * _JUTA else (500_000 if monthly < 20 * _JUTA else _JUTA)
            sales = round(monthly / step) * step * 12
        else:  # a round yearly figure
            sales = round(monthly * 12 / (5 * _JUTA)) * 5 * _JUTA
        sales = min(_MICRO_SALES[1], max(_MICRO_SALES[0], sales))
    sales_text = _dotted(sales) if rand() < _DOTTED else str(sales)
    if rand() < _CAPITAL_TOO:
        return _running_capital(rand, scale, sales), sales_text, False
    return "", sales_text, False


def _starting_capital(rand: Rand, gauss: Callable[[], float], scale: int) -> int:
    if scale:
        low, high = _CAPITAL_RANGE[scale]
        return _log_uniform(rand(), low, high, 10 * _JUTA)
    amount = math.exp(math.log(15 * _JUTA) + 1.0 * gauss())
    return min(900 * _JUTA, max(_JUTA, round(amount / 500_000) * 500_000))


def _running_capital(rand: Rand, scale: int, sales: int) -> str:
    if scale:
        low, high = _CAPITAL_RANGE[scale]
        return str(_log_uniform(rand(), low // 4, high, 10 * _JUTA))
    share = 0.05 + 0.45 * rand()
    return str(min(900 * _JUTA, max(_JUTA, round(sales * share / 500_000) * 500_000)))
