"""Start-up time of stagectl's fast paths, as ratios to ``python -c "import typer"``.

Run from the repository root with the interpreter stagectl is installed in::

    python benchmarks/startup.py            # 15 runs each after one warm-up
    python benchmarks/startup.py --runs 31

Each command runs as a fresh process (the way a shell runs it), in a temporary
empty home, so the packaged default configs are used. The floor, ``python -c
"import typer"``, is measured in the same run, so the ratios compare like with
like on any machine: the floor runs alternately with each command and the
ratio is taken against those paired floor runs. Targets (docs/performance.md):
``--help`` and completion within 1.3x of the floor, ``verify-thresholds --json``
within 2x.

Completion is static (completions/stagectl.bash starts no Python), so its row
times a whole ``bash`` process that sources the script and calls the completion
function once; ``bash -c true`` is printed alongside for reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import summary

REPO_ROOT = Path(__file__).resolve().parents[1]
BASH_SCRIPT = REPO_ROOT / "completions" / "stagectl.bash"


@dataclass(frozen=True)
class Case:
    label: str
    argv: list[str]
    target_ratio: float | None


@dataclass(frozen=True)
class Timing:
    """Medians over the runs of one command: wall time and CPU time (user + system)."""

    wall_ms: float
    cpu_ms: float
    exit_code: int


def run_once(argv: list[str], *, env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """Wall and CPU milliseconds and the exit code of one fresh process running ``argv``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall_ms = (time.perf_counter() - started) * 1000.0
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    return wall_ms, (usage.ru_utime + usage.ru_stime) * 1000.0, process.returncode


def paired_timings(
    floor: list[str], argv: list[str], *, runs: int, env: dict[str, str], cwd: Path
) -> tuple[Timing, Timing]:
    """Timings of the floor and of ``argv``, alternating run by run after a warm-up.

    Alternating means a busy machine slows both alike, so the ratio stays
    meaningful; CPU time is printed too because it barely moves with load.
    """
    samples: list[list[tuple[float, float, int]]] = [[], []]
    for command in (floor, argv):
        run_once(command, env=env, cwd=cwd)
    for _ in range(runs):
        for index, command in enumerate((floor, argv)):
            samples[index].append(run_once(command, env=env, cwd=cwd))
    timings = [
        Timing(
            statistics.median(w for w, _, _ in s),
            statistics.median(c for _, c, _ in s),
            max(code for _, _, code in s),
        )
        for s in samples
    ]
    return timings[0], timings[1]


def stagectl_argv() -> list[str]:
    """The console script next to this interpreter, else ``python -m stagectl``."""
    script = Path(sys.executable).parent / "stagectl"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "stagectl"]


def registered(command: str) -> bool:
    from stagectl.cli.main import COMMANDS

    if command not in COMMANDS:
        return False
    import importlib.util

    return importlib.util.find_spec(COMMANDS[command][0]) is not None


def cases(home: Path) -> list[Case]:
    stagectl = stagectl_argv()
    found: list[Case] = [Case("stagectl --help", [*stagectl, "--help"], 1.3)]
    bash = shutil.which("bash")
    if bash and BASH_SCRIPT.is_file():
        call = (
            f"source {BASH_SCRIPT}; COMP_WORDS=(stagectl verify-thresholds -c ''); "
            "COMP_CWORD=3; _stagectl"
        )
        found.append(Case("bash completion (static)", [bash, "-c", call], 1.3))
        found.append(Case("bash -c true (reference)", [bash, "-c", "true"], None))
    if registered("verify-thresholds"):
        found.append(
            Case(
                "stagectl verify-thresholds --json", [*stagectl, "verify-thresholds", "--json"], 2.0
            )
        )
    if registered("report"):
        missing = str(home / "no-such-report.json")
        found.append(
            Case("stagectl report verify (no file)", [*stagectl, "report", "verify", missing], None)
        )
    if registered("state"):
        found.append(
            Case("stagectl state info --json", [*stagectl, "state", "info", "--json"], None)
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description="Time stagectl's fast paths.")
    parser.add_argument("--runs", type=int, default=15)
    summary.add_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        env = {**os.environ, "STAGECTL_HOME": str(home), "NO_COLOR": "1"}
        for name in ("STAGECTL_HMAC_KEY", "STAGECTL_HMAC_KEY_FILE", "STAGECTL_STATE"):
            env.pop(name, None)
        if registered("init"):  # so `state info` finds a database
            subprocess.run([*stagectl_argv(), "init"], env=env, cwd=home, capture_output=True)
        import typer

        print(f"python {sys.version.split()[0]}, typer {typer.__version__}, {args.runs} runs each")
        floor = [sys.executable, "-c", "import typer"]
        print(f"{'command':<36} {'wall':>9} {'floor':>9} {'ratio':>6}   {'cpu':>8} {'ratio':>6}")
        failed = False
        rows: list[summary.Row] = []
        for case in cases(home):
            base, timing = paired_timings(floor, case.argv, runs=args.runs, env=env, cwd=home)
            ratio = timing.wall_ms / base.wall_ms
            cpu_ratio = timing.cpu_ms / base.cpu_ms
            verdict = ""
            ok: bool | None = None
            if case.target_ratio is not None:
                ok = ratio <= case.target_ratio
                failed = failed or not ok
                verdict = f"  target <= {case.target_ratio:.1f}x: {'ok' if ok else 'MISSED'}"
            print(
                f"{case.label:<36} {timing.wall_ms:6.1f} ms {base.wall_ms:6.1f} ms {ratio:5.2f}x"
                f"  {timing.cpu_ms:5.1f} ms {cpu_ratio:5.2f}x  exit {timing.exit_code}{verdict}"
            )
            if case.target_ratio is not None:
                rows.append(
                    summary.Row(
                        f"{case.label} (wall; CPU {cpu_ratio:.2f}x)",
                        timing.wall_ms,
                        "ms",
                        base.wall_ms,
                        ratio,
                        f"<= {case.target_ratio:.1f}x import typer",
                        ok,
                    )
                )
        if args.summary_json:
            summary.emit(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
