"""``stagectl daily``: seed 001's 02:00 UTC research chain, one step after another
(docs/operations.md, "The daily schedule").

1. **ingest**: ``data fetch`` of the strategy config's sleeve symbols (1h candles and
   funding) into ``HOME/data/<exchange>/``, resuming the cache. Skipped, with the reason
   in the report, when no exchange is configured (``--exchange`` /
   ``STAGECTL_DAILY_EXCHANGE`` unset: a paper or offline home); the later steps then read
   the bundled sample (or ``--data``), so an offline desk's chain still runs.
2. **check**: ``data check`` of the data the next steps read. A file that fails its
   integrity check (a bundled file whose sha256 no longer matches its manifest) fails the
   step; gaps filled or dropped, snapped timestamps and flagged outliers are counted in
   the report and the chain goes on, since the research loaders read the data through
   the same governance.
3. **walk-forward**: the purged walk-forward of the strategy config with its defaults on
   that data; its summary (folds, mean OOS Sharpe, stitched curve) goes in the report.
4. **compare**: champion vs challenger, ``shadow compare`` of the challenger run against
   the champion run of the state database; the promotion verdict goes in the report
   (``--out``, recorded in the state's report index). Skipped, saying so, unless both run
   ids are configured (``--champion`` / ``--challenger`` or ``STAGECTL_DAILY_CHAMPION``
   / ``STAGECTL_DAILY_CHALLENGER``). A "do not promote" verdict is a finding, not a
   failure.

The chain stops at the first step that fails (an error: exit 2 bad input, 3 exchange or
state unreachable; or the integrity check: exit 1) and names it; the later steps are
reported as not run. A bug (exit 70) and an interruption (130) are not caught here:
they end the command as anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.jsonable import to_jsonable
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK, StagectlError

KIND = "daily"
STEPS = ("ingest", "check", "walk-forward", "compare")
HISTORY_DAYS = 400
"""How far back a first fetch starts (the walk-forward's 120-day training window, a
5-day purge and enough 30-day test folds); later runs fetch only the newer bars."""
FETCH_TIMEFRAME = "1h"

PASS, FAIL, SKIP, NOT_RUN = "PASS", "FAIL", "SKIP", "NOT RUN"


@dataclass(frozen=True)
class DailyRequest:
    """What the chain runs on: the exchange to ingest from (None: no ingest), the data to
    read when there is no ingest (None: the bundled sample), the runs to compare."""

    now: datetime
    exchange: str | None = None
    base_url: str | None = None
    data_dir: Path | None = None
    champion: str | None = None
    challenger: str | None = None


@dataclass
class StepResult:
    """One step: PASS, FAIL, SKIP (with the reason) or NOT RUN (an earlier step failed)."""

    name: str
    status: str
    reason: str = ""
    exit_code: int = EXIT_OK
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "status": self.status,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "details": self.details,
        }


@dataclass
class DailyResult:
    """The steps in order, the first failed one (None: the chain ran through), the verdict."""

    started: datetime
    steps: list[StepResult]
    data_source: str

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == FAIL), None)

    @property
    def exit_code(self) -> int:
        failed = self.failed
        return EXIT_OK if failed is None else failed.exit_code

    @property
    def verdict(self) -> dict[str, Any] | None:
        compare = self.steps[-1]
        return compare.details.get("verdict") if compare.status == PASS else None

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "started": to_jsonable(self.started),
            "data": self.data_source,
            "completed": failed is None,
            "failed_step": None if failed is None else failed.name,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "steps": [s.to_dict() for s in self.steps],
        }


Step = Callable[[], StepResult]


def run(
    request: DailyRequest, *, home: Home, report: Callable[[str], None] | None = None
) -> DailyResult:
    """Run the four steps in order; stop at the first that fails."""
    say = report or (lambda _line: None)
    data_dir = request.data_dir
    if request.exchange is not None:
        from stagectl.services.data.fetch import cache_dir

        data_dir = cache_dir(home, request.exchange)
    source = "bundled" if data_dir is None else str(data_dir)
    steps: list[tuple[str, Step]] = [
        ("ingest", lambda: _ingest(request, home)),
        ("check", lambda: _check(data_dir, home)),
        ("walk-forward", lambda: _walk_forward(data_dir, home)),
        ("compare", lambda: _compare(request, home)),
    ]
    done: list[StepResult] = []
    for name, step in steps:
        if done and done[-1].status in (FAIL, NOT_RUN):
            done.append(StepResult(name, NOT_RUN, f"the {_first_failed(done)} step failed"))
            continue
        say(f"daily: {name} ...")
        try:
            result = step()
        except StagectlError as error:
            result = StepResult(name, FAIL, str(error), error.exit_code)
        say(f"daily: {name} {result.status}{': ' + result.reason if result.reason else ''}")
        done.append(result)
    return DailyResult(request.now, done, source)


def _first_failed(done: list[StepResult]) -> str:
    return next(s.name for s in done if s.status == FAIL)


def _ingest(request: DailyRequest, home: Home) -> StepResult:
    if request.exchange is None:
        where = "the bundled sample" if request.data_dir is None else str(request.data_dir)
        return StepResult(
            "ingest",
            SKIP,
            f"no exchange configured (--exchange / STAGECTL_DAILY_EXCHANGE): the chain "
            f"reads {where}",
        )
    from stagectl.config.loader import load_strategy
    from stagectl.services.data import fetch

    config, _ = load_strategy(home)
    fetched = []
    for symbol in [s.symbol for s in config.sleeves]:
        result = fetch.run(
            fetch.DataFetchRequest(
                exchange_id=request.exchange,
                symbol=symbol,
                timeframe=FETCH_TIMEFRAME,
                since=request.now - timedelta(days=HISTORY_DAYS),
                base_url=request.base_url,
            ),
            home=home,
        )
        fetched.append(
            {
                "symbol": symbol,
                "series": {s.kind: {"rows": s.rows, "new_rows": s.new_rows} for s in result.series},
            }
        )
    return StepResult("ingest", PASS, details={"exchange": request.exchange, "symbols": fetched})


def _check(data_dir: Path | None, home: Home) -> StepResult:
    from stagectl.services.data import check

    result = check.run(check.DataCheckRequest(data_dir=data_dir), home=home)
    broken = [
        f"{d.symbol} {d.market} {d.kind} {d.timeframe}"
        for d in result.datasets
        if d.integrity_ok is False
    ]
    details = {
        "datasets": len(result.datasets),
        "clean": sum(d.clean for d in result.datasets),
        "filled_bars": sum(d.report.filled_bars for d in result.datasets),
        "dropped_bars": sum(d.report.dropped_bars for d in result.datasets),
        "off_grid_rows": sum(d.report.off_grid_rows for d in result.datasets),
        "outliers": sum(len(d.report.outliers) for d in result.datasets),
        "integrity_failed": broken,
    }
    if broken:
        reason = f"{len(broken)} file(s) fail their sha256 integrity check: {', '.join(broken)}"
        return StepResult("check", FAIL, reason, EXIT_CHECK_FAILED, details)
    acted = not result.clean
    reason = "governance acted (see details); the loaders apply the same rules" if acted else ""
    return StepResult("check", PASS, reason, details=details)


def _walk_forward(data_dir: Path | None, home: Home) -> StepResult:
    from stagectl.services.research import walk_forward

    result = walk_forward.run(walk_forward.WalkForwardRequest(data_dir=data_dir), home=home)
    summary, settings = result.body["summary"], result.body["settings"]
    stitched = summary["stitched_oos"]
    details = {
        "folds": settings["folds"],
        "mean_oos_sharpe": summary["mean_oos_sharpe"],
        "positive_folds": summary["positive_folds"],
        "stitched_oos_sharpe": stitched["sharpe"],
        "stitched_oos_return": stitched["total_return"],
        "stitched_oos_max_drawdown": stitched["max_drawdown"],
    }
    return StepResult("walk-forward", PASS, details=details)


def _compare(request: DailyRequest, home: Home) -> StepResult:
    if request.champion is None or request.challenger is None:
        return StepResult(
            "compare",
            SKIP,
            "no champion and challenger runs configured (--champion/--challenger, "
            "STAGECTL_DAILY_CHAMPION/STAGECTL_DAILY_CHALLENGER)",
        )
    from stagectl.services.research import shadow

    comparison = shadow.run_compare(
        shadow.ShadowCompareRequest(request.champion, request.challenger), home=home
    )
    verdict = {
        "champion": request.champion,
        "challenger": request.challenger,
        "promote": comparison.promote,
        "reasons": comparison.body["verdict"]["reasons"],
    }
    return StepResult("compare", PASS, details={"verdict": verdict})
