"""Stress Lab run time on the bundled data: every scenario (9 hypothetical, 16 historical).

Prints two figures (target: the whole run under 2 s):
- the whole command, ``stagectl stress-lab --json`` in a fresh process (interpreter,
  imports, threshold verification, data loading, all scenarios, envelope), median of 5;
- the service alone, in-process after the imports (data loading + scenarios), median of 5.

Run: ``python benchmarks/stress_lab.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from summary import Row, add_option, emit

RUNS = 5


def _cli_seconds(home: Path) -> float:
    env = {**os.environ, "STAGECTL_HOME": str(home), "NO_COLOR": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stagectl", "stress-lab", "--json"],
        env=env,
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"stress-lab failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def _service_seconds(home: Path) -> tuple[float, int]:
    from stagectl.config.home import Home
    from stagectl.services.stage6 import stress_lab

    start = time.perf_counter()
    result = stress_lab.run(stress_lab.StressRequest(), home=Home.resolve(home))
    elapsed = time.perf_counter() - start
    return elapsed, len(result.body["scenarios"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    add_option(parser)
    args = parser.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cli = [_cli_seconds(home) for _ in range(runs)]
        _service_seconds(home)  # warm the imports
        service = [_service_seconds(home) for _ in range(runs)]
    scenarios = service[0][1]
    cli_median = statistics.median(cli)
    service_median = statistics.median(s for s, _ in service)
    print(f"scenarios run: {scenarios}")
    print(
        f"stagectl stress-lab --json, fresh process: median {cli_median:.3f} s "
        f"(min {min(cli):.3f}, max {max(cli):.3f}) over {runs} runs"
    )
    print(f"service only, imports warm: median {service_median:.3f} s over {runs} runs")
    print(f"target 2.0 s: whole command at {cli_median / 2.0:.0%} of the target")
    if args.summary_json:
        emit(
            [
                Row(
                    "stress-lab service, imports warm",
                    service_median,
                    "s",
                    target="< 1 s",
                    met=service_median < 1.0,
                ),
                Row(
                    "stagectl stress-lab --json, fresh process",
                    cli_median,
                    "s",
                    target="< 2 s",
                    met=cli_median < 2.0,
                ),
            ]
        )


if __name__ == "__main__":
    main()
