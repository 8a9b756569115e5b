"""run-live --live through real ccxt (binanceusdm) against the loopback exchange simulator.

The simulator's clock moves only when the loop waits for a bar to close (``SimClock``),
so a run is deterministic: bar k's market orders fill at bar k's open, as in the
backtest. The restart tests run the loop in a child process (``child_main``) and kill
it with SIGKILL at points chosen with the simulator's latency injection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stagectl.config.home import Home
from stagectl.config.loader import load_strategy
from stagectl.config.state_url import StateLocation, parse_state_location, state_exists
from stagectl.domain.backtest import run_backtest
from stagectl.errors import InputError, StagectlError
from stagectl.exchange.ccxt_broker import CcxtBroker, open_broker
from stagectl.exchange.credentials import Credentials, require_credentials
from stagectl.exchange.retry import RetryPolicy
from stagectl.services.live import run as service
from stagectl.services.live.artifacts import ARTIFACT_FILES
from stagectl.services.strategy.sleeves import build_sleeves
from stagectl.state.db import DatabaseError, open_state
from stagectl.state.equity import snapshots
from stagectl.state.journal import events
from stagectl.state.ledger import fills
from tests.brokers import GuardedBroker, WriteLockProbe
from tests.conftest import Run
from tests.exchange_sim import API_KEY, API_SECRET, ExchangeSim, running_sim
from tests.orders import new_order

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # the window trades: entries, flips and exits
HOUR = timedelta(hours=1)
SYMBOLS = ("ETHUSDT", "SOLUSDT")
FAST = RetryPolicy(max_attempts=4, base_backoff_s=0.01, max_backoff_s=0.05, in_flight_s=0.05)
ORDER, TRADES = "/fapi/v1/order", "/fapi/v1/userTrades"
REPO = Path(__file__).resolve().parents[2]


class SimClock:
    """The simulator's clock; waiting for an instant moves the simulator there."""

    def __init__(self, sim: ExchangeSim) -> None:
        self.sim = sim

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sim.engine.now_ms / 1000, tz=UTC)

    def wait_until(self, when: datetime) -> bool:
        gap_ms = int((when - self.now()).total_seconds() * 1000)
        if gap_ms > 0:
            self.sim.advance(ms=gap_ms)
        return True


class HttpSimClock:
    """The same clock for a child process, through the simulator's control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _call(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.base_url + path, method=method, data=b"")
        with urllib.request.urlopen(request, timeout=10) as answer:
            body: dict[str, Any] = json.loads(answer.read())
        return body

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._call("POST", "/_sim/state")["now_ms"] / 1000, tz=UTC)

    def wait_until(self, when: datetime) -> bool:
        gap_ms = int((when - self.now()).total_seconds() * 1000)
        if gap_ms > 0:
            self._call("POST", f"/_sim/advance?bars=0&ms={gap_ms}")
        return True


def sim_broker(base_url: str, credentials: Credentials | None = None) -> CcxtBroker:
    return open_broker(
        "binanceusdm",
        credentials=credentials or Credentials(API_KEY, API_SECRET, "test"),
        base_url=base_url,
        timeout_ms=2_000,
        policy=FAST,
        rate_limit=False,  # ccxt's client-side throttle: nothing to test against a simulator
    )


def child_main(argv: list[str]) -> None:
    """The loop in a child process: ``HOME BASE_URL END_ISO STATE`` (credentials from
    env; STATE a SQLite file or a PostgreSQL URL)."""
    home_root, base_url, end, state = argv
    result = service.run(
        service.RunLiveRequest(live=True, end=datetime.fromisoformat(end)),
        home=Home(root=Path(home_root), state_override=parse_state_location(state)),
        live_broker=sim_broker(base_url, require_credentials()),
        clock=HttpSimClock(base_url),
    )
    print(json.dumps(result.summary(), default=str))


@contextmanager
def loopback_sim() -> Iterator[ExchangeSim]:
    """The simulator with the bundled ETH and SOL candles and funding, from T0."""
    from stagectl.data import load_candles, load_funding

    candles = {s: load_candles(s) for s in SYMBOLS}
    funding = {s: load_funding(s) for s in SYMBOLS}
    with running_sim(candles=candles, funding=funding, start=T0.isoformat()) as sim:
        # The handler writes headers and body separately; without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to every answer.
        sim._server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        yield sim


def fresh_account(sim: ExchangeSim) -> ExchangeSim:
    """A fresh account on a shared simulator at T0 (the candles load once)."""
    engine = sim.engine
    with engine.lock:
        engine.orders.clear()
        engine.trades.clear()
        engine.income.clear()
        engine.positions.clear()
        engine.partial_fill_ratios.clear()
        engine.wallet = Decimal("10000")
        engine.now_ms = int(T0.timestamp() * 1000)
    with sim.state.lock:
        sim.state.faults.clear()
        sim.state.requests.clear()
    return sim


@pytest.fixture(scope="module")
def sim_module() -> Iterator[ExchangeSim]:
    with loopback_sim() as sim:
        yield sim


@pytest.fixture
def sim(sim_module: ExchangeSim) -> ExchangeSim:
    return fresh_account(sim_module)


def _home(root: Path) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    return Home(root=root)


def _run_in_process(sim: ExchangeSim, home: Home, bars: int) -> service.RunLiveResult:
    return service.run(
        service.RunLiveRequest(live=True, end=T0 + (bars - 1) * HOUR),
        home=home,
        live_broker=sim_broker(sim.base_url),
        clock=SimClock(sim),
    )


def _assert_consistent(sim: ExchangeSim, home: Home, run_id: str) -> None:
    """One exchange order per client order id, the ledger equal to the exchange's
    trades, the recorded positions equal to the exchange's."""
    sim_orders = sim.orders
    per_id = Counter(o.client_order_id for o in sim_orders)
    assert sim_orders and max(per_id.values()) == 1, per_id
    with open_state(home.state_path) as db:
        ledger = {f.trade_id: (f.qty, f.price, f.fee) for f in fills(db, run_id=run_id)}
        recorded = {
            row[0]: row[1]
            for row in db.conn.execute(
                "SELECT client_order_id, status FROM orders WHERE run_id = ?", (run_id,)
            )
        }
        book = {
            row[0]: Decimal(row[1])
            for row in db.conn.execute(
                "SELECT symbol, qty FROM positions WHERE run_id = ?", (run_id,)
            )
        }
    trades = {f"{t.symbol}:{t.trade_id}": (t.qty, t.price, t.commission) for t in sim.engine.trades}
    assert ledger == trades
    assert {o.client_order_id for o in sim_orders} <= set(recorded)
    assert "new" not in recorded.values()
    exchange = {s: p.amount for s, p in sim.engine.positions.items()}
    assert {s: q for s, q in book.items() if q} == {s: q for s, q in exchange.items() if q}


def test_a_live_run_never_calls_the_exchange_inside_a_write_transaction(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "guarded")
    broker = GuardedBroker(sim_broker(sim.base_url), WriteLockProbe(home.state_path))
    result = service.run(
        service.RunLiveRequest(live=True, end=T0 + 11 * HOUR),
        home=home,
        live_broker=broker,
        clock=SimClock(sim),
    )
    assert result.status == "completed" and result.orders_sent > 0
    assert {"place", "fetch_order", "fills_since", "funding_since", "marks"} <= set(broker.calls)
    assert broker.inside_a_transaction == []


def test_live_stop_limits_the_exchange_cannot_take_are_refused_before_the_run_starts(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "stops")
    with pytest.raises(InputError, match="algo-order API") as refused:
        service.run(
            service.RunLiveRequest(live=True, stop_limits=True, end=T0 + HOUR),
            home=home,
            live_broker=sim_broker(sim.base_url),
            clock=SimClock(sim),
        )
    assert refused.value.where == "--stop-limits"
    assert not home.state_path.exists()
    assert sim.orders == []


def test_live_run_on_the_simulator_holds_the_backtest_positions_bar_for_bar(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "live")
    bars = 24
    result = _run_in_process(sim, home, bars)
    assert (result.mode, result.status, result.bars) == ("live", "completed", bars)
    assert result.state_path == home.root / "state" / "stagectl.db"
    config, _ = load_strategy(home)
    specs, _ = build_sleeves(config, None, T0, T0 + (bars - 1) * HOUR)
    backtest = run_backtest(specs, initial_equity=config.initial_equity_usd)
    with open_state(result.state_path) as db:
        rows = snapshots(db, result.run_id)
        recon = events(db, run_id=result.run_id, event_type="RECONCILIATION")
        alerts = events(db, run_id=result.run_id, event_type="ALERT")
    assert [r.ts for r in rows] == [T0 + (k + 1) * HOUR for k in range(bars)]
    seen: set[float] = set()
    for symbol in SYMBOLS:
        expected = np.sign(backtest.positions[symbol].to_numpy())
        held = np.array([row.sleeves[symbol]["state"] for row in rows])
        assert (held == expected).all(), symbol
        seen.update(expected.tolist())
    assert seen == {-1.0, 0.0, 1.0}, "the window should go long, short and flat"
    assert all(abs((e.payload or {})["drift_usd"]) <= 0.01 for e in recon)
    assert not [a for a in alerts if a.action == "RECONCILIATION_DRIFT"]
    assert sorted(p.name for p in result.artifacts_dir.iterdir()) == sorted(ARTIFACT_FILES)
    _assert_consistent(sim, home, result.run_id)


def test_faults_are_retried_and_the_loop_ends_consistent(sim: ExchangeSim, tmp_path: Path) -> None:
    home = _home(tmp_path / "faults")
    sim.inject_status(429, retry_after_s=0, path=ORDER, method="POST")
    sim.inject_drop(after_accept=True, path=ORDER, method="POST")
    sim.inject_status(503, count=2, path="/fapi/v3/positionRisk")
    sim.inject_status(502, path=TRADES)
    sim.inject_drop(after_accept=True, path="/fapi/v1/klines")
    result = _run_in_process(sim, home, bars=8)
    assert result.status == "completed" and result.bars == 8
    assert not sim.state.faults, "every injected fault was hit"
    assert result.orders_sent >= 2
    assert result.max_abs_drift_usd <= 0.01
    _assert_consistent(sim, home, result.run_id)


def spawn_child(module: str, *args: str) -> subprocess.Popen[str]:
    """A process running ``module``'s ``child_main(args)`` with the simulator's key in its
    environment and the home's own state (no ``STAGECTL_STATE``)."""
    env = {
        **os.environ,
        "STAGECTL_EXCHANGE_API_KEY": API_KEY,
        "STAGECTL_EXCHANGE_API_SECRET": API_SECRET,
        # the tests' package, and this checkout's stagectl even where another one is installed
        "PYTHONPATH": os.pathsep.join((str(REPO), str(REPO / "src"))),
    }
    env.pop("STAGECTL_STATE", None)
    code = f"import sys; from {module} import child_main; child_main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _child(home: Home, sim: ExchangeSim, end: datetime) -> subprocess.Popen[str]:
    return spawn_child(
        __name__, str(home.root), sim.base_url, end.isoformat(), str(home.state_path)
    )


def _wait_for(condition: Any, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() not in (None, -signal.SIGKILL):
            raise AssertionError(f"the child exited before {what}: {process.stderr.read()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _run_fills(home: Home) -> list[Any]:
    with open_state(home.state_path) as db:
        return fills(db)


def _order_statuses(home: Home) -> list[str]:
    if not state_exists(home.state_path):
        return []
    try:
        with open_state(home.state_path, migrate=False) as db:
            return [row[0] for row in db.conn.execute("SELECT status FROM orders")]
    except (DatabaseError, StagectlError):
        return []


@pytest.mark.parametrize(
    ("state_url", "kill_point", "path", "method", "requests_before_kill"),
    [
        # recorded 'new', then killed while looking it up: never reached the exchange
        ("sqlite", "before the exchange saw the order", ORDER, "GET", 1),
        # recorded 'new', killed while the create is in flight: the exchange accepts it
        ("sqlite", "after the exchange accepted the order", ORDER, "POST", 1),
        # acked and filled, killed while fetching fills (2 per settle, 1 per sleeve)
        ("sqlite", "between the ack and the fills", TRADES, "GET", 3),
        # on PostgreSQL, the kill point that makes the restart adopt an order (the three
        # points pass there too; one keeps CI's time down)
        ("postgresql", "after the exchange accepted the order", ORDER, "POST", 1),
    ],
    indirect=["state_url"],
)
def test_sigkill_mid_step_then_restart_sends_no_order_twice_and_loses_no_fill(
    sim: ExchangeSim,
    tmp_path: Path,
    state_url: StateLocation,
    kill_point: str,
    path: str,
    method: str,
    requests_before_kill: int,
) -> None:
    """On either backend (the child's state is ``state_url``)."""
    home = replace(_home(tmp_path / "killed"), state_override=state_url)
    end = T0 + 5 * HOUR
    if requests_before_kill > 1:  # let the earlier matching requests through quickly
        sim.inject_latency(0.0, count=requests_before_kill - 1, path=path, method=method)
    sim.inject_latency(1.0, path=path, method=method)
    first = _child(home, sim, end)
    _wait_for(
        lambda: len(sim.requests(path, method)) >= requests_before_kill,
        first,
        f"the kill point {kill_point}",
    )
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    statuses = _order_statuses(home)
    if kill_point == "between the ack and the fills":
        assert statuses and "new" not in statuses
        assert len(_run_fills(home)) < len(sim.engine.trades), "fills must be unrecorded"
    else:
        assert statuses.count("new") >= 1
    if kill_point == "after the exchange accepted the order":
        _wait_for(lambda: len(sim.orders) == 1, first, "the exchange to accept the order")
    else:
        assert len(sim.orders) == (0 if kill_point == "before the exchange saw the order" else 2)
    second = _child(home, sim, end)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["resumed"] and summary["status"] == "completed"
    if kill_point == "after the exchange accepted the order":
        assert summary["orders_recovered"] >= 1
    with open_state(home.state_path) as db:
        rows = snapshots(db, summary["run_id"])
    assert [r.ts for r in rows] == [T0 + (k + 1) * HOUR for k in range(6)]
    _assert_consistent(sim, home, summary["run_id"])


SIM_CREDS = {"STAGECTL_EXCHANGE_API_KEY": API_KEY, "STAGECTL_EXCHANGE_API_SECRET": API_SECRET}


def test_cli_live_run_uses_the_base_url_and_the_home_state_and_prints_no_secret(
    sim: ExchangeSim, run: Run, home: Path
) -> None:
    before_start = (T0 - HOUR).isoformat()
    args = ["run-live", "--live", "--yes", "--base-url", sim.base_url, "--end", before_start]
    result = run([*args, "--json"], env=SIM_CREDS)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["mode"], summary["status"], summary["bars"]) == ("live", "completed", 0)
    assert summary["state"] == str(home / "state" / "stagectl.db")
    assert summary["equity"] == 10_000.0
    assert API_SECRET not in result.stdout + result.stderr
    assert sim.requests("/fapi/v3/account"), "the run read the account through --base-url"


def test_cli_live_refuses_an_account_already_holding_a_sleeve(sim: ExchangeSim, run: Run) -> None:
    sim_broker(sim.base_url).place(
        new_order("SOLUSDT", "buy", "market", Decimal("1"), "sc-outside-the-run")
    )
    args = ["run-live", "--live", "--yes", "--base-url", sim.base_url]
    result = run(args, env=SIM_CREDS)
    assert result.exit_code == 2
    assert "SOLUSDT" in result.stderr and "emergency-close" in result.stderr


def test_cli_live_refuses_replay_options(run: Run, tmp_path: Path) -> None:
    assert run(["run-live", "--live", "--yes", "--speed", "10x"], env=SIM_CREDS).exit_code == 2
    result = run(["run-live", "--live", "--yes", "--replay-data", str(tmp_path)], env=SIM_CREDS)
    assert result.exit_code == 2 and "--replay-data" in result.stderr
    assert run(["run-live", "--base-url", "http://127.0.0.1:9"]).exit_code == 2


def test_exchange_clock_waits_for_the_server_time_and_gives_way_to_a_stop(
    sim: ExchangeSim,
) -> None:
    import threading

    from stagectl.services.live.exchange import ExchangeClock

    broker = sim_broker(sim.base_url)
    stop = threading.Event()
    clock = ExchangeClock(broker, stop.is_set, slice_s=0.01)
    assert clock.now() == T0
    assert clock.wait_until(T0)  # already there: no wait
    mover = threading.Timer(0.2, lambda: sim.advance(bars=1))
    mover.start()
    # one second ahead on the server's clock, which the simulator moves 0.2 s in
    assert clock.wait_until(T0 + HOUR / 3600)
    mover.join()
    assert clock.now() == T0 + HOUR
    stop.set()
    assert not clock.wait_until(T0 + 2 * HOUR)


class LateSimClock(SimClock):
    """The simulator's clock, seen by a loop that always wakes ``late`` after the instant
    it waited for (a busy host)."""

    def __init__(self, sim: ExchangeSim, late: timedelta) -> None:
        super().__init__(sim)
        self.late = late

    def wait_until(self, when: datetime) -> bool:
        return super().wait_until(when + self.late)


class FrozenMarks:
    """The simulator's broker whose marks the exchange stamped ``lag`` ago (a mark feed
    that stopped updating while klines still close on time)."""

    def __init__(self, inner: CcxtBroker, lag: timedelta) -> None:
        self._inner = inner
        self.lag = lag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def marks(self, symbols: list[str]) -> dict[str, Any]:
        from dataclasses import replace

        return {s: replace(m, ts=m.ts - self.lag) for s, m in self._inner.marks(symbols).items()}


def _mark_alerts(home: Home, run_id: str) -> list[Any]:
    with open_state(home.state_path) as db:
        found = events(db, run_id=run_id, event_type="ALERT")
    return [a for a in found if a.action == "MARK_STALE"]


def test_a_mark_the_exchange_stopped_updating_is_stale_though_the_bar_closed_on_time(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "frozen-marks")
    result = service.run(
        service.RunLiveRequest(live=True, end=T0 + 2 * HOUR),
        home=home,
        live_broker=FrozenMarks(sim_broker(sim.base_url), timedelta(seconds=90)),
        clock=SimClock(sim),
    )
    assert result.status == "completed" and result.bars == 3
    stale = _mark_alerts(home, result.run_id)
    closes = [T0 + k * HOUR for k in (1, 2, 3)]
    assert sorted((a.ts, a.symbol) for a in stale) == [(t, s) for t in closes for s in SYMBOLS]
    assert {(a.severity, (a.payload or {})["age_s"]) for a in stale} == {("MEDIUM", 90.0)}
    first = min(stale, key=lambda a: (a.ts, a.symbol or ""))
    assert (first.payload or {})["mark_ts"] == "2026-03-02T00:58:30Z"


def test_a_loop_that_sees_the_bar_close_late_does_not_call_a_fresh_mark_stale(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "late-loop")
    late = timedelta(seconds=45)  # past mark_stale_s (30 s) after every bar close
    result = service.run(
        service.RunLiveRequest(live=True, end=T0 + 2 * HOUR),
        home=home,
        live_broker=sim_broker(sim.base_url),
        clock=LateSimClock(sim, late),
    )
    assert result.status == "completed" and result.bars == 3
    with open_state(home.state_path) as db:
        recon = events(db, run_id=result.run_id, event_type="RECONCILIATION")
    assert len(recon) == 3
    assert _mark_alerts(home, result.run_id) == []
