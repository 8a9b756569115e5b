"""Run a research command's independent pieces: in this process, or as Dask tasks.

walk-forward (its folds), cpcv (its splits and PBO), audit-strategy (its folds and
holdout backtests) and ``backtest --grid`` (its cells) each cut their work into pieces
that share one read-only input (the market, the candle frames) and give one result
each. :func:`open_executor` gives the one way to run them (docs/research.md,
"Parallel runs"):

- serially, in order, when one worker is asked for or dask is not installed (then with
  a one-line notice saying how to enable it);
- on a local cluster of ``workers`` processes (``distributed.LocalCluster``: every port
  on 127.0.0.1, no dashboard), started for the command and closed after it;
- on an existing cluster at ``scheduler`` (``tcp://HOST:PORT``).

Both paths call the same task on the same input, so the results are equal (the tests
compare them). The shared input goes to the workers once (``client.scatter(...,
broadcast=True)``), not once per task. A piece that fails raises its error with the
piece's label in front (``grid cell lookback_scale=2 SOLUSDT 2024: ...``); a
StagectlError keeps its class and so its exit code, anything else is an internal error.
An interruption (Ctrl-C) cancels the cluster's outstanding tasks before it unwinds.

dask is imported only when a cluster is used: ``--help`` and serial runs never load it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from stagectl.errors import ExternalError, InputError, InternalError, StagectlError

S = TypeVar("S")
A = TypeVar("A")
R = TypeVar("R")

Report = Callable[[str], None]

INSTALL_HINT = "pip install 'stagectl[dist]'"
CONNECT_TIMEOUT_S = 5
SCHEDULER_SCHEMES = ("tcp://", "tls://")
SILENCED = logging.CRITICAL + 1
"""The local cluster's own log lines stay off the command's stderr (one is a CRITICAL
traceback when Ctrl-C closes the client during a scatter): a piece's error reaches the
user as that piece's one-line error."""
WORKER_PRELOAD = "stagectl.services.research.dask_worker"
"""Local workers ignore the terminal's Ctrl-C; this process handles it."""
MALLOC_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
LOCAL_CLUSTER: dict[str, Any] = {
    "threads_per_worker": 1,
    "processes": True,
    "host": "127.0.0.1",
    # The scheduler always serves /health and /metrics over HTTP: on a free port of
    # 127.0.0.1 (not 8787 on every interface), and without the dashboard.
    "dashboard_address": "127.0.0.1:0",
    "scheduler_kwargs": {"dashboard": False},
    "silence_logs": SILENCED,
    "preload": [WORKER_PRELOAD],
}


def quiet(_: str) -> None:
    """The report of a caller that shows no progress."""
    return None


@dataclass(frozen=True)
class Parallelism:
    """``--workers N`` and ``--scheduler ADDRESS`` (``DASK_SCHEDULER_ADDRESS``)."""

    workers: int = 1
    scheduler: str | None = None

    @property
    def wanted(self) -> bool:
        """Whether the user asked for a cluster at all."""
        return self.scheduler is not None or self.workers > 1

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"the Dask cluster at {self.scheduler}"
        return f"a local Dask cluster of {self.workers} worker processes"


@dataclass(frozen=True)
class Piece(Generic[A]):
    """One independent unit of work and the label its errors and progress carry."""

    label: str
    args: A


@dataclass(frozen=True)
class _Failure:
    """A piece's error, carried back as a value so every path raises it the same way."""

    error_class: type[StagectlError]
    message: str
    where: str | None
    trace: str


@dataclass(frozen=True)
class _Outcome(Generic[R]):
    value: R | None = None
    failure: _Failure | None = None


def _attempt(task: Callable[[S, A], R], shared: S, args: A) -> _Outcome[R]:
    """Run one piece; its error becomes a value (the same in a worker and here)."""
    try:
        return _Outcome(value=task(shared, args))
    except StagectlError as error:
        return _Outcome(failure=_Failure(type(error), error.message, error.where, ""))
    except Exception as error:
        text = f"{type(error).__name__}: {error}"
        return _Outcome(failure=_Failure(InternalError, text, None, traceback.format_exc()))


class _RemoteTraceback(Exception):
    """Where a piece failed (shown with ``--debug``), as concurrent.futures shows it."""

    def __str__(self) -> str:
        return str(self.args[0])


def _unwrap(outcome: _Outcome[R], label: str) -> R:
    failure = outcome.failure
    if failure is None:
        return outcome.value  # type: ignore[return-value]
    where = label if failure.where is None else f"{label}: {failure.where}"
    error = failure.error_class(failure.message, where=where)
    if failure.trace:
        raise error from _RemoteTraceback(failure.trace)
    raise error


class Executor(Protocol):
    """Runs ``task(shared, piece.args)`` for every piece; results in the pieces' order."""

    def map(
        self, task: Callable[[S, A], R], shared: S, pieces: Sequence[Piece[A]], *, what: str
    ) -> list[R]: ...


class _Progress:
    """``what: done/total`` on the report line, at most about every tenth of the way."""

    def __init__(self, report: Report, what: str, total: int) -> None:
        self.report, self.what, self.total, self.shown = report, what, total, -1

    def step(self, done: int) -> None:
        tenth = done * 10 // max(self.total, 1)
        if tenth != self.shown or done == self.total:
            self.shown = tenth
            self.report(f"{self.what}: {done}/{self.total} done")


@dataclass(frozen=True)
class SerialExecutor:
    """Every piece in this process, in order."""

    report: Report = quiet

    def map(
        self, task: Callable[[S, A], R], shared: S, pieces: Sequence[Piece[A]], *, what: str
    ) -> list[R]:
        progress = _Progress(self.report, what, len(pieces))
        results = []
        for done, piece in enumerate(pieces, start=1):
            results.append(_unwrap(_attempt(task, shared, piece.args), piece.label))
            progress.step(done)
        return results


@dataclass(frozen=True)
class DaskExecutor:
    """Every piece as a task of ``client``'s cluster, the shared input scattered once."""

    client: Any
    """A ``distributed.Client`` (its API is untyped)."""
    report: Report = quiet

    def map(
        self, task: Callable[[S, A], R], shared: S, pieces: Sequence[Piece[A]], *, what: str
    ) -> list[R]:
        from distributed import as_completed

        as_done: Callable[[list[Any]], Iterator[Any]] = as_completed
        progress = _Progress(self.report, what, len(pieces))
        # A list of one: scatter would cut a dict or a tuple into one future per item.
        [data] = self.client.scatter([shared], broadcast=True, hash=False)
        futures = [
            self.client.submit(_attempt, task, data, piece.args, pure=False) for piece in pieces
        ]
        try:
            for done, _ in enumerate(as_done(futures), start=1):
                progress.step(done)
            outcomes = self.client.gather(futures)
        except BaseException:
            self.client.cancel([*futures, data], force=True)
            raise
        self.client.cancel([data])
        return [_unwrap(o, p.label) for o, p in zip(outcomes, pieces, strict=True)]


@contextmanager
def open_executor(parallelism: Parallelism, report: Report = quiet) -> Iterator[Executor]:
    """The executor ``parallelism`` asks for, its cluster closed when the block ends."""
    if not parallelism.wanted:
        yield SerialExecutor(report)
        return
    try:
        import distributed
    except ImportError:
        report(
            f"dask is not installed: running serially; {INSTALL_HINT} to run on "
            f"{parallelism.describe()}"
        )
        yield SerialExecutor(report)
        return
    with _client(distributed, parallelism) as client:
        report(f"running on {parallelism.describe()}")
        yield DaskExecutor(client, report)


@contextmanager
def _client(distributed: Any, parallelism: Parallelism) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of a local one started here."""
    address = parallelism.scheduler
    if address is not None:
        if not address.startswith(SCHEDULER_SCHEMES) or ":" not in address.split("://", 1)[1]:
            raise InputError(
                f"expected tcp://HOST:PORT, got {address!r}",
                where="--scheduler/DASK_SCHEDULER_ADDRESS",
            )
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            raise ExternalError(
                f"cannot reach the Dask scheduler at {address} ({type(error).__name__}); "
                "is it running?",
                where="--scheduler",
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = start_local_cluster(parallelism.workers)
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def start_local_cluster(workers: int) -> Any:
    """The ``distributed.LocalCluster`` of ``--workers N`` (tests and benchmarks use it
    too); the caller closes it. Needs dask installed."""
    import dask
    import distributed

    # distributed starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc
    # map every array above 128 KiB afresh: measured here, the grid's workers then spent
    # twice the CPU of the same cells run serially. Unset, they spend the same.
    local_cluster: Callable[..., Any] = distributed.LocalCluster
    with dask.config.set({MALLOC_TRIM_KEY: None}):
        return local_cluster(**LOCAL_CLUSTER, n_workers=workers)
