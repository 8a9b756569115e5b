"""Research pieces as Dask tasks give exactly the serial results (issue 15, item 4).

One two-process LocalCluster on 127.0.0.1 serves the whole module (it starts in seconds);
each test compares a command's serial result with the same request run on it, on the
bundled data: walk-forward folds, CPCV paths and PBO, the audit table, grid rows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from stagectl.config.home import Home
from stagectl.errors import InputError, Interrupted
from stagectl.services.research import audit, cpcv, grid, walk_forward
from stagectl.services.research.parallel import (
    Parallelism,
    Piece,
    open_executor,
    start_local_cluster,
)
from tests.conftest import Run, skip_when_ignored

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow  # clusters start in seconds; the module shares one

GRID = """\
parameters:
  lookback_scale: [0.5, 1, 2]
  debounce_bars: [1, 2, 4]
symbols: [ETHUSDT, SOLUSDT]
periods:
  - {name: "2025H1", start: 2025-01-01, end: 2025-06-30}
"""


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    cluster = start_local_cluster(2)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def home_dir(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path)


def _on(scheduler: str) -> Parallelism:
    return Parallelism(scheduler=scheduler)


def test_walk_forward_folds_on_dask_equal_the_serial_folds(scheduler: str, home_dir: Home) -> None:
    request = walk_forward.WalkForwardRequest()
    serial = walk_forward.run(request, home=home_dir)
    lines: list[str] = []
    parallel = walk_forward.run(
        replace(request, parallelism=_on(scheduler)), home=home_dir, report=lines.append
    )
    assert parallel.body == serial.body
    assert parallel.oos_returns.equals(serial.oos_returns)
    assert len(serial.rows) > 10
    folds = len(serial.rows)
    assert lines[0] == f"running on the Dask cluster at {scheduler}"
    assert lines[-1] == f"walk-forward folds: {folds}/{folds} done"


def test_cpcv_paths_and_pbo_on_dask_equal_the_serial_ones(scheduler: str, home_dir: Home) -> None:
    request = cpcv.CpcvRequest(folds=6, test_folds=2)
    serial = cpcv.run(request, home=home_dir)
    parallel = cpcv.run(replace(request, parallelism=_on(scheduler)), home=home_dir)
    assert parallel.body["paths"] == serial.body["paths"]
    assert parallel.body["pbo"] == serial.body["pbo"]
    assert serial.body["pbo"]["pbo"] is not None
    assert parallel.body == serial.body


def test_audit_rows_on_dask_equal_the_serial_rows(scheduler: str, home_dir: Home) -> None:
    request = audit.AuditRequest()
    serial = audit.run(request, home=home_dir)
    parallel = audit.run(replace(request, parallelism=_on(scheduler)), home=home_dir)
    assert parallel.body["table"] == serial.body["table"]
    assert parallel.body == serial.body


def test_grid_rows_on_dask_equal_the_serial_rows(
    scheduler: str, home_dir: Home, tmp_path: Path
) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    request = grid.GridRequest(grid=path)
    serial = grid.run(request, home=home_dir)
    parallel = grid.run(replace(request, parallelism=_on(scheduler)), home=home_dir)
    assert len(serial.rows) == 18
    assert [r.symbol for r in serial.rows[:2]] == ["ETHUSDT", "SOLUSDT"]
    assert parallel.rows == serial.rows
    assert parallel.body == serial.body


def test_a_failing_grid_cell_on_dask_names_its_cell(
    scheduler: str, home_dir: Home, tmp_path: Path
) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(
        "parameters: {debounce_bars: [2]}\nsymbols: [SOLUSDT]\n"
        "periods: [{name: '2019', start: 2019-01-01, end: 2019-12-31}]\n"
    )
    request = grid.GridRequest(grid=path, parallelism=_on(scheduler))
    with pytest.raises(InputError) as caught:
        grid.run(request, home=home_dir)
    assert str(caught.value).startswith(
        "grid cell debounce_bars=2 SOLUSDT 2019: --start/--end: fewer than 2 common bars"
    )


def _slow(seconds: float, _: int) -> float:
    time.sleep(seconds)
    return seconds


def _scheduler_tasks(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def test_an_interruption_cancels_the_clusters_outstanding_tasks(scheduler: str) -> None:
    def interrupt(line: str) -> None:
        if "done" in line:
            raise Interrupted(2)

    pieces = [Piece(f"piece {n}", n) for n in range(8)]
    with pytest.raises(Interrupted) as caught, open_executor(_on(scheduler), interrupt) as ex:
        ex.map(_slow, 0.5, pieces, what="slow pieces")
    with distributed.Client(scheduler, timeout=10) as client:
        deadline = time.monotonic() + 30
        while client.run_on_scheduler(_scheduler_tasks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.run_on_scheduler(_scheduler_tasks) == 0
    assert caught.value.signum == 2


def test_backtest_grid_cli_on_a_scheduler_prints_the_serial_document(
    run: Run, home: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "grid.yaml"
    path.write_text(GRID)
    serial = run(["backtest", "--grid", path, "--json"])
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)
    parallel = run(["backtest", "--grid", path, "--json"])
    assert serial.exit_code == parallel.exit_code == 0, serial.stderr + parallel.stderr
    assert parallel.json()["body"] == serial.json()["body"]
    lines = parallel.stderr.splitlines()
    assert lines[0] == f"running on the Dask cluster at {scheduler}"
    assert "backtest-grid cells: 18/18 done" in lines


def _listening(process: psutil.Process) -> set[str]:
    return {
        connection.laddr.ip
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }


def test_an_unreachable_scheduler_is_an_external_failure(run: Run, unused_port: int) -> None:
    result = run(["walk-forward", "--fixed", "--scheduler", f"tcp://127.0.0.1:{unused_port}"])
    assert result.exit_code == 3
    # main() masks what follows a URL's scheme in error lines (secrets in URLs)
    assert result.stderr.startswith(
        "stagectl: --scheduler: cannot reach the Dask scheduler at tcp://"
    )
    assert len(result.stderr.splitlines()) == 1


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_workers_run_a_loopback_cluster_that_ctrl_c_stops_with_exit_130(home: Path) -> None:
    """--workers 2 starts worker processes listening on 127.0.0.1 only; SIGINT to the whole
    process group, as a terminal sends it: the workers ignore it, the command cancels
    their tasks, closes the cluster and exits 130, without a traceback."""
    skip_when_ignored(signal.SIGINT)
    path = home / "grid.yaml"
    path.write_text(GRID.replace("symbols:", "  cost_multiplier: [1, 1.5, 2]\nsymbols:"))
    command = [sys.executable, "-m", "stagectl", "backtest", "--grid", str(path), "--workers", "2"]
    process = subprocess.Popen(
        command, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    seen = [process.stderr.readline() for _ in range(2)]
    assert seen[0] == "running on a local Dask cluster of 2 worker processes\n", seen
    assert seen[1].startswith("backtest-grid cells: "), seen
    command_process = psutil.Process(process.pid)
    workers = command_process.children(recursive=True)
    addresses = set().union(*(_listening(p) for p in [command_process, *workers]))
    os.killpg(process.pid, signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert rest.splitlines()[-1] == "stagectl: interrupted"
    assert len(workers) >= 2
    assert addresses == {"127.0.0.1"}
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(process.pid)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
