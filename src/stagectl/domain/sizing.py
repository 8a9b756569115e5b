"""Position sizing: volatility targeting x fractional Kelly, then caps (seed 001 §5 + presets).

Conventions (docs/research.md, "Sizing"):

- ``_pct`` values are percent of equity (0.5 = 0.5 %), as in config/risk_presets.yaml,
  so the seed's ``equity * target_risk_pct`` is ``equity * target_risk_pct / 100``.
- ``volatility_risk`` is a fraction of price (0.02 = a 2 % move is one unit of risk);
  ``stop_distance`` is the fraction of price lost when the stop is hit, and defaults to
  ``volatility_risk``. The trade's risk in USD is ``notional * stop_distance``.
- Sizes are in coin units; notionals in USD; the size is never negative (the side is
  the caller's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stagectl.config.risk_presets import PresetName, RiskPresetsConfig
from stagectl.errors import InputError

FloatOrArray = float | npt.NDArray[np.float64]

KELLY_NON_POSITIVE = "KELLY_NON_POSITIVE"
CAP_SINGLE_TRADE_RISK = "CAP_SINGLE_TRADE_RISK"
CAP_SINGLE_COIN = "CAP_SINGLE_COIN"
CAP_SECTOR = "CAP_SECTOR"
CAP_LEVERAGE = "CAP_LEVERAGE"
CAP_OPEN_RISK = "CAP_OPEN_RISK"


@dataclass(frozen=True)
class SizingLimits:
    """The caps of a risk preset; build one from config with :meth:`from_config`."""

    per_trade_risk_pct: float
    daily_loss_stop_pct: float
    max_leverage: float
    single_coin_cap_pct: float = 25.0
    sector_cap_pct: float = 50.0
    kelly_divisor: float = 4.0

    @classmethod
    def from_config(
        cls, config: RiskPresetsConfig, preset: PresetName | None = None
    ) -> SizingLimits:
        chosen = config.presets[preset or config.active]
        return cls(
            per_trade_risk_pct=chosen.per_trade_risk_pct,
            daily_loss_stop_pct=chosen.daily_loss_stop_pct,
            max_leverage=chosen.max_leverage,
            single_coin_cap_pct=config.limits.single_coin_cap_pct,
            sector_cap_pct=config.limits.sector_cap_pct,
            kelly_divisor=config.limits.kelly_divisor,
        )


@dataclass(frozen=True)
class OpenExposure:
    """What is already open, in USD: this coin, its sector, all positions, sum of stop risks."""

    coin_notional_usd: float = 0.0
    sector_notional_usd: float = 0.0
    gross_notional_usd: float = 0.0
    open_risk_usd: float = 0.0


@dataclass(frozen=True)
class SizingDecision:
    """The final size and which rule bound it (``reason_code`` None: uncapped Kelly size)."""

    size: float
    notional_usd: float
    risk_usd: float
    base_size: float
    kelly: float
    uncapped_notional_usd: float
    cap_notional_usd: dict[str, float]
    reason_code: str | None


def volatility_target_size(
    equity: FloatOrArray,
    target_risk_pct: FloatOrArray,
    price: FloatOrArray,
    volatility_risk: FloatOrArray,
) -> FloatOrArray:
    """base_size = equity * target_risk_pct / 100 / (price * volatility_risk), in coin units."""
    vol = np.asarray(volatility_risk, dtype=np.float64)
    px = np.asarray(price, dtype=np.float64)
    if np.any(vol <= 0) or np.any(px <= 0):
        raise InputError("price and volatility_risk must be > 0", where="volatility_risk")
    target_usd = np.asarray(equity, dtype=np.float64) * np.asarray(target_risk_pct) / 100.0
    result = target_usd / (px * vol)
    return float(result) if np.ndim(result) == 0 else np.asarray(result, dtype=np.float64)


def kelly_fraction(
    win_rate: FloatOrArray, avg_win: FloatOrArray, avg_loss: FloatOrArray
) -> FloatOrArray:
    """Kelly = (p * b - q) / b with b = avg_win / |avg_loss|, q = 1 - p (may be negative).

    ``avg_loss`` may be given negative (as ``performance.trade_stats`` does) or positive;
    its magnitude is used. No losses (avg_loss 0) is the limit b -> inf: Kelly = p.
    avg_win 0 (b = 0) gives -inf when q > 0: no edge.
    """
    p = np.asarray(win_rate, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise InputError("win rate must be within [0, 1]", where="win_rate")
    win = np.asarray(avg_win, dtype=np.float64)
    loss = np.abs(np.asarray(avg_loss, dtype=np.float64))
    if np.any(win < 0):
        raise InputError("average win must be >= 0", where="avg_win")
    with np.errstate(divide="ignore", invalid="ignore"):
        b = win / loss
        kelly = np.where(loss == 0, p, (p * b - (1.0 - p)) / b)
        kelly = np.where((loss > 0) & (win == 0), np.where(p < 1, -np.inf, 0.0), kelly)
    return float(kelly) if np.ndim(kelly) == 0 else np.asarray(kelly, dtype=np.float64)


def exposure_caps(equity: float, limits: SizingLimits, exposure: OpenExposure) -> dict[str, float]:
    """The notional headroom (USD, may be negative) of the caps that need no stop distance.

    - single coin: E * single_coin_cap_pct / 100 - O_coin
    - sector: E * sector_cap_pct / 100 - O_sector
    - leverage: E * max_leverage - O_gross
    """
    return {
        CAP_SINGLE_COIN: equity * limits.single_coin_cap_pct / 100.0 - exposure.coin_notional_usd,
        CAP_SECTOR: equity * limits.sector_cap_pct / 100.0 - exposure.sector_notional_usd,
        CAP_LEVERAGE: equity * limits.max_leverage - exposure.gross_notional_usd,
    }


def size_position(
    *,
    equity: float,
    price: float,
    volatility_risk: float,
    target_risk_pct: float,
    win_rate: float,
    avg_win: float,
    avg_loss: float,
    limits: SizingLimits,
    exposure: OpenExposure | None = None,
    stop_distance: float | None = None,
) -> SizingDecision:
    """Final size = base_size * Kelly / kelly_divisor, then the tightest cap.

    Negative (or zero) Kelly gives size 0 with ``KELLY_NON_POSITIVE``: the statistics say
    the trade has no edge, so it is not taken (the seed does not say; shorting a negative
    edge would be a different strategy). Caps on the notional N of this trade, with E the
    equity, d the stop distance and the open exposure (O_coin, O_sector, O_gross, O_risk):

    - single-trade risk: N * d <= E * per_trade_risk_pct / 100
    - single coin: O_coin + N <= E * single_coin_cap_pct / 100
    - sector: O_sector + N <= E * sector_cap_pct / 100
    - leverage: O_gross + N <= E * max_leverage
    - total open risk: O_risk + N * d <= E * daily_loss_stop_pct / 100

    The smallest bound wins (ties: the order above); a cap already exhausted gives 0.
    """
    exposure = exposure or OpenExposure()
    stop = volatility_risk if stop_distance is None else stop_distance
    if equity <= 0 or stop <= 0 or not math.isfinite(equity * price * stop):
        raise InputError("equity and stop distance must be finite and > 0", where="equity")
    base = float(volatility_target_size(equity, target_risk_pct, price, volatility_risk))
    kelly = float(kelly_fraction(win_rate, avg_win, avg_loss))
    caps = {
        CAP_SINGLE_TRADE_RISK: equity * limits.per_trade_risk_pct / 100.0 / stop,
        **exposure_caps(equity, limits, exposure),
        CAP_OPEN_RISK: (equity * limits.daily_loss_stop_pct / 100.0 - exposure.open_risk_usd)
        / stop,
    }
    caps = {name: max(value, 0.0) for name, value in caps.items()}
    if kelly <= 0:
        uncapped, notional, reason = 0.0, 0.0, KELLY_NON_POSITIVE
    else:
        uncapped = base * price * kelly / limits.kelly_divisor
        tightest = min(caps, key=lambda name: caps[name])
        if caps[tightest] < uncapped:
            notional, reason = caps[tightest], tightest
        else:
            notional, reason = uncapped, None
    return SizingDecision(
        size=notional / price,
        notional_usd=notional,
        risk_usd=notional * stop,
        base_size=base,
        kelly=kelly,
        uncapped_notional_usd=uncapped,
        cap_notional_usd=caps,
        reason_code=reason,
    )
