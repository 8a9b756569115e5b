"""run-live on an exchange: closed bars from ccxt, the exchange's clock (docs/run-live.md).

The live feed gives the same per-bar values as the replay feed (``live_feed``), from
the exchange instead of files:

- history: ``history_bars`` closed bars per sleeve before the run's first bar are
  fetched once (the EMA signals forget their start as ``(1 - 2/(L+1))^n``, about 1e-7
  for ``n = 8 x`` the longest lookback), then each step fetches only the bars that
  closed since. A bar is closed when ``open + timeframe <= server time``; the bar in
  progress is never used.
- targets: ``strategy_run.sleeve_target`` on the closes (the backtest's function), and
  ``held[k] = target[k - signal_delay]``, flat for the first ``signal_delay`` bars of
  the run, as ``run_backtest`` starts a window flat.
- step k, at the open t[k]: the held target, the decision price (close of bar k-1) and
  bar k-1's dollar volume; at the close t[k+1]: bar k's OHLC and the funding rates of
  settlements in ``(t[k], t[k+1]]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from stagectl.domain.performance import bar_minutes
from stagectl.errors import InputError
from stagectl.exchange.errors import ExchangeUnavailable
from stagectl.exchange.paper import Bar
from stagectl.services.live.feed import RECENT_BARS, SleeveBar, StepData, dec
from stagectl.services.strategy.sleeves import sleeve_target

if TYPE_CHECKING:
    from stagectl.config.strategy import StrategyConfig

OHLCV_PAGE = 1500
LATE_GRACE_MAX = timedelta(minutes=5)


class Clock(Protocol):
    """The venue's time: ``now`` and a wait that returns False when a stop was asked."""

    def now(self) -> datetime: ...

    def wait_until(self, when: datetime) -> bool: ...


class ExchangeClock:
    """Waits on the exchange's server time: sleeps locally in short slices (a stop is
    seen within ``slice_s``), then asks the server again, until it says ``when``."""

    def __init__(
        self,
        broker: Any,
        should_stop: Callable[[], bool],
        *,
        slice_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker = broker
        self.should_stop = should_stop
        self.slice_s = slice_s
        self.sleep = sleep

    def now(self) -> datetime:
        stamp: datetime = self.broker.server_time()
        return stamp

    def wait_until(self, when: datetime) -> bool:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return True
            deadline = time.monotonic() + remaining + 0.2
            while (left := deadline - time.monotonic()) > 0:
                if self.should_stop():
                    return False
                self.sleep(min(left, self.slice_s))


def late_grace(step: timedelta) -> timedelta:
    """How late a bar's open may be acted on: a quarter bar, at most 5 minutes."""
    return min(LATE_GRACE_MAX, step / 4)


def bar_open(now: datetime, step: timedelta) -> datetime:
    """The open of the bar in progress at ``now``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + step * ((now - epoch) // step)


def next_bar_to_trade(now: datetime, step: timedelta) -> datetime:
    """The bar in progress when its open is within the grace, else the next one."""
    current = bar_open(now, step)
    return current if now - current <= late_grace(step) else current + step


def qty_steps(broker: Any, symbols: list[str]) -> dict[str, Decimal]:
    """The exchange's amount increment per symbol (orders are rounded down to it)."""
    steps = {}
    for symbol in symbols:
        precision = broker.market(symbol).get("precision", {}).get("amount")
        if precision:
            steps[symbol] = Decimal(str(precision))
    return steps


class ExchangeFeed:
    """Closed bars and targets per sleeve from a ccxt market-data session."""

    def __init__(
        self,
        config: StrategyConfig,
        market_data: Any,
        first_bar: datetime,
        *,
        history_bars: int | None = None,
    ) -> None:
        self.config = config
        self.market_data = market_data
        self.first_bar = first_bar
        self.step = timedelta(minutes=bar_minutes(config.timeframe))
        self.delay = config.execution.signal_delay_bars
        longest = max(max(s.lookbacks) for s in config.sleeves)
        self.history_bars = history_bars or max(8 * longest, OHLCV_PAGE)
        self.sleeves = {s.symbol: s for s in config.sleeves}
        self.frames: dict[str, pd.DataFrame] = {}
        self.targets: dict[str, pd.Series] = {}

    # --- bars ------------------------------------------------------------------------

    def refresh(self, now: datetime) -> None:
        """Fetch every bar of each sleeve that closed by ``now`` and is not held yet."""
        for symbol in self.sleeves:
            frame = self.frames.get(symbol)
            since = (
                self.first_bar - self.step * self.history_bars
                if frame is None or frame.empty
                else frame.index[-1].to_pydatetime() + self.step
            )
            rows = self._closed_rows(symbol, since, now)
            if not rows and frame is not None:
                continue
            new = pd.DataFrame(
                [r[1:6] for r in rows],
                index=pd.DatetimeIndex(
                    [pd.Timestamp(int(r[0]), unit="ms", tz="UTC") for r in rows]
                ),
                columns=["open", "high", "low", "close", "volume"],
                dtype=float,
            )
            merged = new if frame is None else pd.concat([frame, new])
            merged = merged[~merged.index.duplicated(keep="last")].sort_index()
            self.frames[symbol] = merged
            self.targets[symbol] = sleeve_target(self.sleeves[symbol], merged["close"], self.config)

    def _closed_rows(self, symbol: str, since: datetime, now: datetime) -> list[list[float]]:
        step_ms = int(self.step.total_seconds() * 1000)
        now_ms = _ms(now)
        cursor, rows = _ms(since), []
        while cursor + step_ms <= now_ms:
            page = self.market_data.ohlcv_page(
                symbol, self.config.timeframe, cursor, now_ms, OHLCV_PAGE
            )
            closed = [r for r in page if int(r[0]) >= cursor and int(r[0]) + step_ms <= now_ms]
            rows.extend(closed)
            if not closed:  # ccxt may cap the page below OHLCV_PAGE: page until empty
                break
            cursor = int(closed[-1][0]) + step_ms
        return rows

    def _row(self, symbol: str, ts: datetime) -> pd.Series | None:
        frame = self.frames.get(symbol)
        stamp = pd.Timestamp(ts)
        if frame is None or stamp not in frame.index:
            return None
        row = frame.loc[stamp]
        assert isinstance(row, pd.Series)  # the index is unique
        return row

    # --- steps -----------------------------------------------------------------------

    def held_target(self, symbol: str, ts: datetime) -> float:
        """``target[k - delay]``; flat for the run's first ``delay`` bars."""
        source = ts - self.step * self.delay
        if source < self.first_bar:
            return 0.0
        target = self.targets[symbol]
        stamp = pd.Timestamp(source)
        return float(target.loc[stamp]) if stamp in target.index else 0.0

    def _prev_spread_bps(self, symbol: str, ts: datetime) -> float | None:
        """Corwin-Schultz of bars k-2 and k-1 (None when k-2 is missing: the floor)."""
        from stagectl.domain.costs import pair_spread_bps

        rows = [self._row(symbol, ts - self.step * n) for n in (2, 1)]
        if any(row is None for row in rows):
            return None
        high = [float(row["high"]) for row in rows if row is not None]
        low = [float(row["low"]) for row in rows if row is not None]
        return pair_spread_bps(high, low)

    def _regime(self, symbol: str, ts: datetime) -> str | None:
        """The regime label of the closed bar ``ts`` (``domain.regimes.regime_labels``)."""
        from stagectl.domain.regimes import regime_labels

        frame = self.frames.get(symbol)
        stamp = pd.Timestamp(ts)
        if frame is None or stamp not in frame.index:
            return None
        labels = regime_labels(frame.loc[:stamp], bar_minutes(self.config.timeframe))
        return str(labels[-1])

    def _recent_signs(self, symbol: str, ts: datetime) -> tuple[int, ...]:
        """The sign of the signal held over each of the last ``RECENT_BARS`` bars up to
        ``ts`` (the router's persistence), from the target history where it has them."""
        target = self.targets[symbol]
        signs = []
        for n in range(RECENT_BARS - 1, -1, -1):
            stamp = pd.Timestamp(ts - self.step * (n + self.delay))
            if stamp in target.index:
                value = float(target.loc[stamp])
                signs.append(0 if value == 0 else (1 if value > 0 else -1))
        return tuple(signs)

    def _avg_dollar_volume(self, symbol: str, ts: datetime) -> Decimal | None:
        """The mean dollar volume of the last ``RECENT_BARS`` closed bars (None: none)."""
        rows = [self._row(symbol, ts - self.step * n) for n in range(1, RECENT_BARS + 1)]
        volumes = [float(r["volume"]) * float(r["close"]) for r in rows if r is not None]
        return dec(sum(volumes) / len(volumes)) if volumes else None

    def open_step(self, ts: datetime, now: datetime) -> StepData:
        """What is known at the open of the bar ``ts``: bar k-1 must have closed."""
        self._ensure(ts - self.step, now)
        sleeves = {}
        for symbol, sleeve in self.sleeves.items():
            previous = self._row(symbol, ts - self.step)
            assert previous is not None  # _ensure raised otherwise
            price = dec(previous["close"])
            held = self.held_target(symbol, ts)
            sleeves[symbol] = SleeveBar(
                symbol=symbol,
                weight=sleeve.weight_pct / 100.0,
                bar=Bar(ts, ts + self.step, price, price, price, price),
                held_target=held,
                decision_price=price,
                prev_dollar_volume=dec(previous["volume"] * previous["close"]),
                replay_position=held,
                prev_spread_bps=self._prev_spread_bps(symbol, ts),
                regime=self._regime(symbol, ts - self.step),
                recent_signs=self._recent_signs(symbol, ts),
                avg_dollar_volume=self._avg_dollar_volume(symbol, ts),
            )
        index = int((ts - self.first_bar) // self.step)
        return StepData(index, ts, ts + self.step, sleeves)

    def close_step(self, data: StepData, now: datetime) -> StepData:
        """The step with bar k's OHLC and the funding settled in ``(t[k], t[k+1]]``."""
        self._ensure(data.ts, now)
        sleeves = {}
        for symbol, sleeve in data.sleeves.items():
            row = self._row(symbol, data.ts)
            assert row is not None
            bar = Bar(
                data.ts,
                data.close_ts,
                dec(row["open"]),
                dec(row["high"]),
                dec(row["low"]),
                dec(row["close"]),
            )
            sleeves[symbol] = replace(sleeve, bar=bar, funding=self._funding(symbol, data))
        return replace(data, sleeves=sleeves)

    def _ensure(self, ts: datetime, now: datetime) -> None:
        if all(self._row(s, ts) is not None for s in self.sleeves):
            return
        self.refresh(now)
        missing = [s for s in self.sleeves if self._row(s, ts) is None]
        if missing:
            raise ExchangeUnavailable(
                f"{self.market_data.session.name}: no closed {self.config.timeframe} bar at "
                f"{ts.isoformat()} for {', '.join(missing)} (server time {now.isoformat()})"
            )

    def _funding(self, symbol: str, data: StepData) -> list[tuple[datetime, Decimal]]:
        if not self.config.costs.funding_enabled:
            return []
        rows = self.market_data.funding_page(symbol, _ms(data.ts) + 1, _ms(data.close_ts), 10)
        return [
            (datetime.fromtimestamp(ms / 1000, tz=UTC), dec(rate))
            for ms, rate in rows
            if _ms(data.ts) < ms <= _ms(data.close_ts)
        ]


def open_live_broker(exchange: str, base_url: str | None, timeout_ms: int) -> Any:
    """The ccxt broker with the credentials from the environment or key file."""
    from stagectl.exchange.ccxt_broker import open_broker
    from stagectl.exchange.credentials import require_credentials
    from stagectl.exchange.retry import RetryPolicy

    return open_broker(
        exchange,
        credentials=require_credentials(),
        base_url=base_url,
        timeout_ms=timeout_ms,
        policy=RetryPolicy(),
    )


def live_params(request: Any, config: Any, broker: Any, clock: Clock) -> dict[str, Any]:
    """A new live run: its first bar, last bar, and the account equity it starts from.

    The sleeves' symbols must be flat: the ledger reconciles the run's own fills, so a
    position opened outside the run would be drift from the first bar."""
    step = timedelta(minutes=bar_minutes(config.timeframe))
    held = {p.symbol: p.qty for p in broker.positions()}
    busy = [f"{s.symbol} {held[s.symbol]}" for s in config.sleeves if held.get(s.symbol)]
    if busy:
        raise InputError(
            f"the account already holds {', '.join(busy)}; a new live run starts flat in "
            "its sleeves (close them with stagectl emergency-close, or resume the run "
            "that opened them with --resume)",
            where="--live",
        )
    first = next_bar_to_trade(clock.now(), step)
    end = request.end
    if request.duration is not None:
        by_duration = first + request.duration - step
        end = by_duration if end is None else min(end, by_duration)
    equity = sum((b.total for b in broker.balances() if b.asset == "USDT"), Decimal(0))
    return {
        "exchange": request.exchange,
        "start": first.isoformat(),
        "end": None if end is None else end.isoformat(),
        "stop_limits": bool(request.stop_limits),
        "position_limits": request.position_limits,
        "initial_equity": str(equity),
        "breakers": getattr(request, "breakers", True),
    }


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
