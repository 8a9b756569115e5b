"""``stagectl health``: is the trading loop healthy now? (docs/operations.md, "Health")

Each check is PASS, WARN, FAIL or SKIP with its value, its threshold and a reason; the
thresholds are ``health:`` in config/stage3.yaml (``config.stage3.HealthThresholds``,
defaults there). The run is ``--run`` or the latest run-live run. Nothing is changed.

- **data gaps**: the run's bars (its ``DECISION`` events, one per sleeve and bar) over
  the last ``gap_lookback_bars`` bars: a bar of the grid a sleeve has no decision for is
  missing (the bar step is the smallest spacing of the run's recent decisions);
- **last-bar age**: now - the open of the last bar the loop decided;
- **snapshot age**: now - the run's last equity snapshot (written when a bar settles);
- **loop latency**: p50 and p99 of the loop's own time per bar (``loop_latency``) over
  the last ``latency_bars`` bars; graded on p99;
- **order rejections**: orders the venue rejected / orders sent, over ``order_window_h``;
- **order errors**: orders never acknowledged (``not_sent``, or ``new`` for more than a
  bar) / orders decided to send, over the same window;
- **exchange reachable, clock skew**: one round trip (``preflight.probe_exchange``);
  SKIP for a paper run (no exchange) or ``--offline``, like preflight.

Entry: ``run(HealthRequest, *, home, clock) -> HealthResult``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from stagectl.config.home import ConfigSource, Home

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
STATUSES: tuple[Status, ...] = ("PASS", "WARN", "FAIL", "SKIP")
RUN_KIND = "run-live"
DECISION = "DECISION"
"""``domain.decide.DECISION`` (not imported: domain.decide loads the order policy)."""


@dataclass(frozen=True)
class HealthRequest:
    config: Path | None = None
    run_id: str | None = None
    now: datetime | None = None
    max_bar_age_min: float | None = None
    """Overrides ``health.max_bar_age_min`` (``--max-bar-age``)."""
    exchange: str | None = None
    """The exchange to probe [default: the run's venue when the run is live]."""
    base_url: str | None = None
    offline: bool = False
    timeout_ms: int = 10_000


@dataclass(frozen=True)
class HealthCheck:
    name: str
    status: Status
    value: float | str | None
    threshold: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "reason": self.reason,
        }


@dataclass
class HealthResult:
    config: ConfigSource
    now: datetime
    run_id: str | None
    mode: str | None
    checks: list[HealthCheck] = field(default_factory=list)
    venue: str | None = None
    """The venue of the run's last decision (a live run's exchange id)."""

    @property
    def passed(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.describe(),
            "now": self.now.isoformat().replace("+00:00", "Z"),
            "run_id": self.run_id,
            "mode": self.mode,
            "passed": self.passed,
            "summary": {s: sum(c.status == s for c in self.checks) for s in STATUSES},
            "checks": [c.to_dict() for c in self.checks],
        }


def grade(value: float, warn: float, fail: float) -> Status:
    """FAIL above ``fail``, WARN above ``warn``, else PASS."""
    return "FAIL" if value > fail else "WARN" if value > warn else "PASS"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    from stagectl.domain.rolling import sorted_quantile

    return sorted_quantile(sorted(values), q / 100.0)


def run(
    request: HealthRequest,
    *,
    home: Home,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HealthResult:
    """Every check; a bad ``-c`` file raises ConfigError (exit 2)."""
    from stagectl.config.loader import load_stage3
    from stagectl.state import runs
    from stagectl.state.db import open_state

    stage3, source = load_stage3(home, request.config)
    limits = stage3.health
    if request.max_bar_age_min is not None:
        limits = limits.model_copy(update={"max_bar_age_min": request.max_bar_age_min})
    now = request.now or clock()
    with open_state(home.state_path) as db:
        run_id = request.run_id
        if run_id is None:
            latest = runs.list_runs(db, kind=RUN_KIND, limit=1)
            run_id = latest[0].run_id if latest else None
        found = None if run_id is None else runs.get_run(db, run_id)
        if run_id is not None and found is None:
            from stagectl.errors import InputError

            raise InputError(f"no run {run_id!r} in the state database", where="--run")
        result = HealthResult(source, now, run_id, None if found is None else found.mode)
        if found is None:
            result.checks.extend(_no_run(str(home.state_path), limits))
        else:
            result.checks.extend(_run_checks(db, found.run_id, now, limits))
            result.venue = _venue(db, found.run_id)
    result.checks.append(_exchange(request, stage3, result, clock))
    return result


RUN_CHECKS = (
    "data gaps",
    "last-bar age",
    "snapshot age",
    "loop latency",
    "order rejections",
    "order errors",
)


def _no_run(state: str, limits: Any) -> list[HealthCheck]:
    """No run-live run: the loop is not healthy, it is absent. The last-bar age FAILs (a
    health timer reading an empty or wrong state, say without the loop's STAGECTL_STATE,
    must not pass forever); the other run checks have nothing to judge."""
    why = "no run-live run in the state database"
    checks = [HealthCheck(name, "SKIP", None, "-", why) for name in RUN_CHECKS]
    checks[RUN_CHECKS.index("last-bar age")] = HealthCheck(
        "last-bar age",
        "FAIL",
        None,
        _minutes_threshold(limits.warn_bar_age_min, limits.max_bar_age_min),
        f"no run-live run in {state}: the loop never ran against this state, or this "
        "command reads another state than the loop's (STAGECTL_STATE, --home)",
    )
    return checks


def _run_checks(db: Any, run_id: str, now: datetime, limits: Any) -> list[HealthCheck]:
    from stagectl.state import journal

    recent = journal.recent_event_times(
        db, run_id=run_id, event_type=DECISION, limit=limits.gap_lookback_bars * 64
    )
    step = _bar_step(recent)
    return [
        _gaps(recent, step, limits),
        _bar_age(recent, now, limits),
        _snapshot_age(db, run_id, now, limits),
        _latency(db, run_id, limits),
        *_orders(db, run_id, now, step, limits),
    ]


def _bar_step(recent: list[tuple[datetime, str | None]]) -> timedelta | None:
    times = sorted({ts for ts, _ in recent})
    spacings = [b - a for a, b in pairwise(times) if b > a]
    return min(spacings) if spacings else None


def _gaps(
    recent: list[tuple[datetime, str | None]], step: timedelta | None, limits: Any
) -> HealthCheck:
    name = "data gaps"
    threshold = f"WARN >= {limits.warn_missing_bars}, FAIL >= {limits.max_missing_bars} bars"
    if step is None:
        return HealthCheck(name, "SKIP", None, threshold, "fewer than two bars decided")
    last = max(ts for ts, _ in recent)
    first = last - step * (limits.gap_lookback_bars - 1)
    seen: dict[str, set[datetime]] = defaultdict(set)
    for ts, symbol in recent:
        if ts >= first:
            seen[symbol or "?"].add(ts)
    start = min(min(times) for times in seen.values())
    expected = int((last - start) / step) + 1
    missing = {s: expected - len(times) for s, times in seen.items() if len(times) < expected}
    count = sum(missing.values())
    status: Status = (
        "FAIL"
        if count >= limits.max_missing_bars
        else "WARN"
        if count >= limits.warn_missing_bars
        else "PASS"
    )
    shown = ", ".join(f"{s} {n}" for s, n in sorted(missing.items())) or "none"
    minutes = f"{step.total_seconds() / 60:g} min"
    reason = f"{expected} bars of {minutes} to {_iso(last)} per sleeve; missing: {shown}"
    return HealthCheck(name, status, count, threshold, reason)


def _minutes_threshold(warn: float, fail: float) -> str:
    return f"WARN > {warn:g} min, FAIL > {fail:g} min"


def _age_check(
    name: str,
    at: datetime | None,
    now: datetime,
    limits: Any,
    bounds: tuple[float, float],
    what: str,
) -> HealthCheck:
    """Minutes since ``at`` graded against ``bounds`` (warn, fail). A time in the future
    is a clock problem, not freshness: graded against the clock-skew limits, so a local
    clock behind the one that stamped the bars cannot pass as fresh data."""
    warn, fail = bounds
    threshold = _minutes_threshold(warn, fail)
    if at is None:
        return HealthCheck(name, "SKIP", None, threshold, f"no {what} recorded yet")
    age = (now - at).total_seconds() / 60.0
    ahead_s = -age * 60.0
    if ahead_s > limits.warn_clock_skew_s:
        status = grade(ahead_s, limits.warn_clock_skew_s, limits.max_clock_skew_s)
        reason = (
            f"{what} at {_iso(at)} is {ahead_s:,.1f} s in the future: this host's clock is "
            "behind the one that stamped it (sync NTP)"
        )
        return HealthCheck(name, status, round(age, 2), threshold, reason)
    return HealthCheck(
        name, grade(age, warn, fail), round(age, 2), threshold, f"{what} at {_iso(at)}"
    )


def _bar_age(recent: list[tuple[datetime, str | None]], now: datetime, limits: Any) -> HealthCheck:
    last = max((ts for ts, _ in recent), default=None)
    return _age_check(
        "last-bar age",
        last,
        now,
        limits,
        (limits.warn_bar_age_min, limits.max_bar_age_min),
        "last bar decided (its open)",
    )


def _snapshot_age(db: Any, run_id: str, now: datetime, limits: Any) -> HealthCheck:
    from stagectl.state.equity import last_snapshot_ts

    return _age_check(
        "snapshot age",
        last_snapshot_ts(db, run_id),
        now,
        limits,
        (limits.warn_snapshot_age_min, limits.max_snapshot_age_min),
        "last equity snapshot (bar settled)",
    )


def _latency(db: Any, run_id: str, limits: Any) -> HealthCheck:
    from stagectl.state.latency import recent_latency

    name = "loop latency"
    threshold = (
        f"p99 WARN > {limits.warn_latency_p99_ms:g} ms, FAIL > {limits.max_latency_p99_ms:g} ms"
    )
    rows = recent_latency(db, run_id, limits.latency_bars)
    if not rows:
        return HealthCheck(name, "SKIP", None, threshold, "no bar latency recorded")
    totals = [r.total_ms for r in rows]
    p50, p99 = percentile(totals, 50), percentile(totals, 99)
    status = grade(p99, limits.warn_latency_p99_ms, limits.max_latency_p99_ms)
    reason = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over the last {len(rows)} bars"
    return HealthCheck(name, status, round(p99, 3), threshold, reason)


def _orders(
    db: Any, run_id: str, now: datetime, step: timedelta | None, limits: Any
) -> list[HealthCheck]:
    from stagectl.domain.types import OrderStatus
    from stagectl.state import orders

    window = timedelta(hours=limits.order_window_h)
    decided = [
        o
        for o in orders.run_orders_since(db, run_id, now - window)
        if o.created_at is None or o.created_at <= now
    ]
    to_send = [o for o in decided if o.status != OrderStatus.DENIED]
    late = now - (step or timedelta(0))
    errors = [
        o
        for o in to_send
        if o.status == OrderStatus.NOT_SENT
        or (o.status == OrderStatus.NEW and o.created_at is not None and o.created_at < late)
    ]
    sent = [o for o in to_send if o not in errors and o.status != OrderStatus.NEW]
    rejected = [o for o in sent if o.status == OrderStatus.REJECTED]
    hours = f"{limits.order_window_h:g}h"
    return [
        _rate(
            "order rejections", len(rejected), len(sent), "sent",
            limits.warn_rejection_rate_pct, limits.max_rejection_rate_pct, hours,
        ),
        _rate(
            "order errors", len(errors), len(to_send), "decided to send",
            limits.warn_error_rate_pct, limits.max_error_rate_pct, hours,
        ),
    ]  # fmt: skip


def _rate(
    name: str, bad: int, total: int, of: str, warn: float, fail: float, hours: str
) -> HealthCheck:
    threshold = f"WARN > {warn:g} %, FAIL > {fail:g} %"
    if total == 0:
        return HealthCheck(name, "PASS", 0.0, threshold, f"no orders {of} in the last {hours}")
    pct = 100.0 * bad / total
    reason = f"{bad} of {total} orders {of} in the last {hours}"
    return HealthCheck(name, grade(pct, warn, fail), round(pct, 3), threshold, reason)


def _exchange(
    request: HealthRequest, stage3: Any, result: HealthResult, clock: Callable[[], datetime]
) -> HealthCheck:
    from stagectl.services.trading.preflight import probe_exchange

    name = "exchange reachable, clock skew"
    limits = stage3.health
    threshold = f"WARN > {limits.warn_clock_skew_s:g} s, FAIL > {limits.max_clock_skew_s:g} s"
    exchange = request.exchange
    if exchange is None and result.mode == "live":
        exchange = result.venue
    if exchange is None:
        why = f"{result.mode or 'no'} run: no exchange (pass --exchange ID)"
        return HealthCheck(name, "SKIP", None, threshold, why)
    if request.offline:
        return HealthCheck(name, "SKIP", None, threshold, "--offline")
    probe = probe_exchange(
        exchange, list(stage3.symbols), clock, base_url=request.base_url,
        timeout_ms=request.timeout_ms,
    )  # fmt: skip
    if probe.skew_s is None:
        return HealthCheck(name, "FAIL", None, threshold, f"{exchange}: {probe.error}")
    status = grade(probe.skew_s, limits.warn_clock_skew_s, limits.max_clock_skew_s)
    reason = f"{exchange}: {len(probe.markets or {})} markets loaded, skew {probe.skew_s:.3f} s"
    return HealthCheck(name, status, round(probe.skew_s, 4), threshold, reason)


def _venue(db: Any, run_id: str) -> str | None:
    """The venue of the run's last decision (``payload.venue``)."""
    from stagectl.state import journal

    last = journal.last_event(db, run_id=run_id, event_type=DECISION)
    venue = None if last is None else (last.payload or {}).get("venue")
    return None if venue is None else str(venue)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
