"""SIGINT and SIGTERM stop every long-running command with exit 130, one line
``stagectl: interrupted`` and nothing half-written (docs/cli.md, "Exit codes").

Each command runs as a real process (``python -m stagectl``) on inputs big enough to keep
it busy for several CPU seconds, and is signalled once it is demonstrably at work: it has
used ``BUSY_CPU_S`` of CPU (Python's start and the command's imports take well under
that), or it has committed its first write (run-live's first bar, metrics import's first
merge transaction). It must then exit 130, and leave every output whole: a report, an
HTML page or an export file is absent or complete, no temporary file is left beside it,
the state database passes ``PRAGMA integrity_check`` and holds no partial import.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from stagectl.cli._signals import Interrupter
from stagectl.cli.main import main
from stagectl.config.home import defaults_dir
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.errors import Interrupted
from stagectl.reports import load_signing_key, read_report, verify_envelope, write_atomic
from tests.cli.conftest import SIGNER
from tests.conftest import Run, skip_when_ignored

BUSY_CPU_S = 1.0
SLEEVES = 24  # sleeves of the research strategy, each on a copy of a bundled candle file
STRESS_SYMBOLS = 40  # symbols in the research data: Stress Lab's cost grows with their square
FILLS = 300_000  # rows of the generated trade file
HANG_GUARD_S = 300.0  # a stuck process fails the test instead of hanging the suite
KEY = "test-signing-key-0123456789abcdef"


@dataclass(frozen=True)
class Inputs:
    """What the commands read: research data and configs, a trade file, a prepared home."""

    data: Path
    strategy: Path
    guard: Path
    fills: Path
    home: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("signal-inputs")
    data = _research_data(root / "data")
    strategy = _research_strategy(root / "strategy.yaml")
    guard = root / "guard.yaml"
    guard_config = (defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text()
    guard.write_text(guard_config.replace("futures_alt_ensemble.yaml", strategy.name))
    return Inputs(data, strategy, guard, _trade_file(root / "trades.csv"), _home(root / "home"))


def _research_data(directory: Path) -> Path:
    """The bundled sample, and its ETH and SOL candles and funding again under made-up
    symbols (A01USDT, ...), as many as a wide strategy and a wide Stress Lab need."""
    shutil.copytree(SAMPLE_DIR, directory)
    for number in range(1, STRESS_SYMBOLS + 1):
        source = "ETHUSDT" if number % 2 else "SOLUSDT"
        for kind in ("1h_ohlcv", "8h_funding"):
            shutil.copyfile(
                directory / f"binance_perp_{source}_{kind}.csv.gz",
                directory / f"binance_perp_A{number:02d}USDT_{kind}.csv.gz",
            )
    return directory


def _research_strategy(path: Path) -> Path:
    """The packaged strategy with ``SLEEVES`` equal sleeves on the made-up symbols."""
    config = yaml.safe_load((defaults_dir() / "futures_alt_ensemble.yaml").read_text())
    sleeve = config["sleeves"][0]
    weights = [100 / SLEEVES] * SLEEVES
    weights[0] = 100 - sum(weights[1:])  # the sum is exactly 100, as the config requires
    config["sleeves"] = [
        {**sleeve, "symbol": f"A{n:02d}USDT", "weight_pct": weight}
        for n, weight in enumerate(weights, start=1)
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _trade_file(path: Path) -> Path:
    with path.open("w") as handle:
        handle.write("timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n")
        handle.writelines(
            f"2025-02-01T00:00:{k % 60:02d}.{k % 1000:03d}Z,{k + 1000},SOLUSDT,"
            f"{'buy' if k % 2 else 'sell'},{150 + (k % 97) / 100},{1 + k % 9},0.001,USDT,maker\n"
            for k in range(FILLS)
        )
    return path


def _home(root: Path) -> Path:
    """An initialised home with core.yaml's compliance sign-off (Stress Lab needs one)."""
    root.mkdir()
    env = {**os.environ, "STAGECTL_HOME": str(root), "STAGECTL_HMAC_KEY": KEY, "NO_COLOR": "1"}
    env.pop("STAGECTL_STATE", None)
    for args in (
        ["init"],
        ["verify-thresholds", "--out", "reports/compliance.json", "--signed-off-by", SIGNER],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "stagectl", *args], cwd=root, env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr
    return root


@dataclass(frozen=True)
class Case:
    """One command; ``args`` receives the inputs and the output directory."""

    name: str
    args: Callable[[Inputs, Path], list[str]]
    busy: Callable[[subprocess.Popen[bytes], Path], bool] | None = None


def _merging(process: subprocess.Popen[bytes], home: Path) -> bool:
    """metrics import committed its first merge transaction."""
    return _count(home, "SELECT coalesce(max(merged_rows), 0) FROM fill_imports") > 0


def _trading(process: subprocess.Popen[bytes], home: Path) -> bool:
    """run-live recorded its first bar."""
    return _count(home, "SELECT count(*) FROM equity_snapshots") > 0


CASES = [
    Case(
        "cpcv",
        lambda i, out: ["cpcv", "-c", str(i.strategy), "--data", str(i.data), "--json"],
    ),
    Case(
        "walk-forward",
        lambda i, out: [
            "walk-forward",
            *("-c", str(i.strategy), "--data", str(i.data), "--test", "10d"),
            *("--export", str(out / "export"), "--json"),
        ],
    ),
    Case(
        "risk-guard-replay",
        lambda i, out: [
            "risk-guard",
            *("--replay", "-c", str(i.guard), "--data", str(i.data)),
            *("--export", str(out / "export"), "--out", str(out / "replay.json"), "--json"),
        ],
    ),
    Case(
        "audit-strategy",
        lambda i, out: [
            "audit-strategy",
            *("-c", str(i.strategy), "--data", str(i.data), "--out", str(out / "audit.json")),
        ],
    ),
    Case(
        "stress-lab",
        lambda i, out: [
            "stress-lab",
            *("--data", str(i.data), "--out", str(out / "stress.json")),
            *("--html", str(out / "stress.html")),
        ],
    ),
    Case(
        "backtest",
        lambda i, out: [
            "backtest",
            *("-c", str(i.strategy), "--data", str(i.data), "--breakers", "--cost-model", "full"),
            *("--export", str(out / "export"), "--out", str(out / "backtest.json")),
            *("--record", "signalled", "--json"),
        ],
    ),
    Case("metrics-import", lambda i, out: ["metrics", "import", str(i.fills)], _merging),
    Case(
        "run-live",
        lambda i, out: [
            "run-live",
            *("--start", "2026-03-01", "--end", "2026-03-30", "--speed", "7200x", "--json"),
        ],
        _trading,
    ),
]


@pytest.mark.skipif(sys.platform != "linux", reason="reads a process's CPU time from /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_busy_command_exits_130_and_leaves_nothing_half_written(
    case: Case, signum: signal.Signals, inputs: Inputs, tmp_path: Path
) -> None:
    skip_when_ignored(signum)
    home = tmp_path / "home"
    shutil.copytree(inputs.home, home)
    out = tmp_path / "out"
    out.mkdir()
    with _started(case.args(inputs, out), home, tmp_path) as process:
        _wait_until_busy(process, home, case.busy)
        process.send_signal(signum)
        code = _wait(process, tmp_path)
    stdout = (tmp_path / "stdout").read_text()
    stderr = (tmp_path / "stderr").read_text()
    assert code == 130, f"exit {code}; stderr:\n{stderr}"
    assert stderr.splitlines()[-1] == "stagectl: interrupted", stderr
    assert stderr.count("stagectl: interrupted") == 1, stderr
    assert "Traceback" not in stderr, stderr
    if stdout:
        json.loads(stdout)  # --json printed one whole document, or nothing
    _assert_whole_outputs(out, home)
    _assert_state_whole(home)


@contextmanager
def _started(args: list[str], home: Path, logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``stagectl ARGS`` in ``home`` (stdout and stderr to files in ``logs``); killed if the
    test fails before it ends."""
    env = {
        **os.environ,
        "STAGECTL_HOME": str(home),
        "STAGECTL_HMAC_KEY": KEY,
        "NO_COLOR": "1",
        "PYTHONFAULTHANDLER": "1",
    }
    for name in ("STAGECTL_STATE", "STAGECTL_DEBUG", "STAGECTL_HMAC_KEY_FILE"):
        env.pop(name, None)
    with (logs / "stdout").open("wb") as stdout, (logs / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "stagectl", *args],
            cwd=home,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _wait(process: subprocess.Popen[bytes], logs: Path) -> int:
    """The exit code; a process still running after ``HANG_GUARD_S`` fails the test with
    the tracebacks of its threads (faulthandler prints them on SIGABRT)."""
    try:
        return process.wait(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        process.wait()
        pytest.fail(f"stagectl did not end after the signal:\n{(logs / 'stderr').read_text()}")


def _wait_until_busy(
    process: subprocess.Popen[bytes],
    home: Path,
    busy: Callable[[subprocess.Popen[bytes], Path], bool] | None,
) -> None:
    """Poll until the command is at work (``busy``, else ``BUSY_CPU_S`` of CPU used)."""
    guard = time.monotonic() + HANG_GUARD_S
    while not (busy(process, home) if busy else _cpu_seconds(process.pid) >= BUSY_CPU_S):
        code = process.poll()
        assert code is None, (
            f"stagectl ended (exit {code}) before it was signalled: make its input bigger"
        )
        assert time.monotonic() < guard, "stagectl never got busy"
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a live process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it has just ended
        return 0.0
    user, system = int(fields[11]), int(fields[12])  # the stat fields utime and stime
    return (user + system) / os.sysconf("SC_CLK_TCK")


def _count(home: Path, query: str) -> int:
    """One number from the state database, 0 while it cannot be read yet."""
    try:
        with sqlite3.connect(home / "state" / "stagectl.db", timeout=5) as conn:
            return int(conn.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


def _assert_whole_outputs(out: Path, home: Path) -> None:
    """Every file written is whole; no temporary file is left anywhere."""
    written = [p for root in (out, home) for p in root.rglob("*") if p.is_file()]
    assert [p for p in written if p.name.endswith(".tmp")] == []
    key = load_signing_key({"STAGECTL_HMAC_KEY": KEY})
    assert key is not None
    for path in out.rglob("*"):
        if path.suffix == ".json":
            assert verify_envelope(read_report(path), key).valid, path
        elif path.suffix == ".html":
            assert path.read_text().rstrip().endswith("</html>"), path
        elif path.suffix == ".csv":
            _assert_whole_csv(path)
    for path in (home / "artifacts").rglob("*.json"):
        json.loads(path.read_text())


def _assert_whole_csv(path: Path) -> None:
    text = path.read_text()
    assert text.endswith("\n"), f"{path} ends mid-line"
    rows = list(csv.reader(io.StringIO(text)))
    assert {len(row) for row in rows} == {len(rows[0])}, f"{path} has a cut row"


def _assert_state_whole(home: Path) -> None:
    """The database is intact; every import's record, rows and totals moved together."""
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        imports = conn.execute("SELECT id, status, inserted FROM fill_imports").fetchall()
        for import_id, status, inserted in imports:
            rows = conn.execute(
                "SELECT count(*) FROM fills WHERE import_id = ?", (import_id,)
            ).fetchone()[0]
            totals = conn.execute(
                "SELECT coalesce(sum(fills), 0) FROM fill_import_totals WHERE import_id = ?",
                (import_id,),
            ).fetchone()[0]
            assert rows == inserted == totals, (import_id, status, rows, inserted, totals)
            if status == "complete":
                assert inserted == FILLS, "a cut import was made visible"


def test_main_puts_back_the_signal_handlers_it_replaced(run: Run, home: Path) -> None:
    def ours(signum: int, frame: object) -> None:
        raise AssertionError("not expected to run")

    sigint = signal.getsignal(signal.SIGINT)
    before = signal.signal(signal.SIGTERM, ours)
    try:
        assert run(["state", "info", "--json"]).exit_code == 2  # no state database yet
        assert signal.getsignal(signal.SIGTERM) is ours
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, before)


def test_main_runs_in_another_thread_without_touching_signal_handlers(home: Path) -> None:
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(main(["--version"])))
    worker.start()
    worker.join()
    assert codes == [0]


def test_a_second_signal_does_not_cut_the_cleanup_of_the_first_short() -> None:
    cleaned_up = False
    with pytest.raises(Interrupted) as raised, Interrupter().installed():
        try:
            _signal_self(signal.SIGTERM)
        finally:
            _signal_self(signal.SIGINT)
            cleaned_up = True
    assert cleaned_up
    assert raised.value.signum == signal.SIGTERM


def test_an_interrupted_atomic_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(b"old\n")

    def interrupt_before_fsync(frame: object, event: str, arg: object) -> None:
        if event == "c_call" and arg is os.fsync:
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(Interrupted), Interrupter().installed():
        sys.setprofile(interrupt_before_fsync)
        try:
            write_atomic(path, b"new\n")
        finally:
            sys.setprofile(None)
    assert path.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [path]


def _signal_self(signum: int) -> None:
    """Send ``signum`` to this thread; its Python handler runs before this returns."""
    signal.raise_signal(signum)
    for _ in range(1000):  # a pending handler also runs at any loop iteration
        pass
