"""``stagectl metrics import``: a trade file into the fill ledger, all or nothing, in short
write transactions.

Order of work (docs/ledger.md, "Importing trades"): a reader thread reads and validates the
file in chunks, one chunk ahead; each chunk's good rows are staged into this process's TEMP
tables and merged into ``fills`` in parts of ``state.ledger_merge.MERGE_BATCH_ROWS``, one
short transaction each, under one import record, so a paper or live run writing meanwhile
waits tens of milliseconds, not the whole file. The rows stay invisible to every reader
until the last transaction marks the import complete. A bad row (unless ``skip_bad``)
discards what was merged and is reported once the rest of the file is validated. A trade
already recorded with other values (earlier in the file or in the ledger: a conflict,
``domain.fill_identity``) is found in the merge transaction that meets it, which rolls
back; the import is discarded and the error names both records. A process killed
half-way leaves nothing visible; rerunning the import completes it, once; a second import
of the same file adds nothing because fills are unique on (account, ``SYMBOL:trade id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.data.trade_files import first_row_of_trade, infer_format, open_trade_file
from stagectl.data.trade_validation import BadRow, TradeColumns
from stagectl.data.trade_values import shown
from stagectl.errors import InputError
from stagectl.services.ledger.conflicts import Conflicting, RowNames, conflict_error

if TYPE_CHECKING:
    from stagectl.state.db import StateDB
    from stagectl.state.ledger_imports import FillImport, ImportKey
    from stagectl.state.ledger_merge import MergeStep, TradeBatch

IMPORT_SOURCE = "import"
DEFAULT_ACCOUNT = "import"

# Rows per chunk of a large CSV: one merge transaction's worth (state.ledger_merge.
# MERGE_BATCH_ROWS), so the reader thread prepares the next chunk while SQLite merges this
# one, and the chunk is staged in the pause between two merge transactions.
CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    fmt: str | None = None
    account: str = DEFAULT_ACCOUNT
    symbol: str | None = None
    skip_bad: bool = False


@dataclass(frozen=True)
class Recorded:
    """What one import wrote: its good rows, how many were new, the bad rows it skipped,
    and how its merge went (transactions, the longest time one held the write lock)."""

    rows: int
    inserted: int
    bad: list[BadRow]
    merge_transactions: int
    longest_write_s: float

    @property
    def duplicates(self) -> int:
        return self.rows - self.inserted


@dataclass(frozen=True)
class ImportResult:
    path: Path
    fmt: str
    account: str
    state_path: StateLocation
    rows: int
    inserted: int
    duplicates: int
    bad: list[BadRow] = field(default_factory=list)
    merge_transactions: int = 0
    longest_write_s: float = 0.0

    @property
    def skipped_bad(self) -> int:
        return len(self.bad)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "format": self.fmt,
            "account": self.account,
            "state": str(self.state_path),
            "rows": self.rows,
            "inserted": self.inserted,
            "already_recorded": self.duplicates,
            "skipped_bad": self.skipped_bad,
            "bad_rows": [b.to_dict() for b in self.bad],
        }


Progress = Callable[[str], None]
BadRowsError = Callable[[list[BadRow]], InputError]


def run(
    request: ImportRequest,
    *,
    home: Home,
    progress: Progress | None = None,
    after_merge: Callable[[MergeStep], None] | None = None,
    merged_rows: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportResult:
    """Validate ``request.path`` and record its fills; InputError on the first bad row or
    conflicting trade.

    ``after_merge`` is called after each merge transaction commits (progress, and the
    tests' way to stop an import half-way), and ``merged_rows(done, total)`` with the
    rows merged so far and the file's rows; ``clock`` is now, which bounds the trades'
    times (at most a day ahead)."""
    from stagectl.state.ledger_imports import ImportKey

    check_account(request.account)
    fmt = infer_format(request.path, request.fmt)
    if not request.path.is_file():
        raise InputError("no such file", where=str(request.path))
    now = clock()
    path, symbol = request.path, request.symbol
    trades = open_trade_file(path, fmt, symbol=symbol, rows_per_chunk=CHUNK_ROWS, now=now)
    key = ImportKey(trades.content_sha256, request.account, IMPORT_SOURCE, symbol)

    def first(trade_symbol: str, trade_id: str) -> int | None:
        trade = (trade_symbol, trade_id)
        return first_row_of_trade(
            path, fmt, trade, symbol=symbol, rows_per_chunk=CHUNK_ROWS, now=now
        )

    recorded = record_chunks(
        home.state_path,
        trades.chunks,
        key=key,
        origin=str(path),
        rows=trades.rows,
        skip_bad=request.skip_bad,
        bad_rows_error=lambda bad: _bad_rows_error(path, bad),
        names=RowNames(row=lambda n: f"{path}:{n}", first=first),
        progress=progress,
        after_merge=_counting(after_merge, merged_rows, trades.rows),
    )
    return ImportResult(
        path=request.path,
        fmt=fmt,
        account=request.account,
        state_path=home.state_path,
        rows=trades.rows,
        inserted=recorded.inserted,
        duplicates=recorded.duplicates,
        bad=recorded.bad,
        merge_transactions=recorded.merge_transactions,
        longest_write_s=recorded.longest_write_s,
    )


def _counting(
    after_merge: Callable[[MergeStep], None] | None,
    merged_rows: Callable[[int, int], None] | None,
    rows: int,
) -> Callable[[MergeStep], None] | None:
    """``after_merge``, also telling ``merged_rows`` how far the merge is."""
    if merged_rows is None:
        return after_merge

    def merged(step: MergeStep) -> None:
        merged_rows(step.merged_rows, rows)
        if after_merge is not None:
            after_merge(step)

    return merged


def check_account(account: str) -> None:
    """An account name (``--source``) is an id: printable ASCII without spaces."""
    from stagectl.data.trade_values import MAX_ID_CHARS

    if not account.strip():
        raise InputError("must name an account", where="--source")
    if len(account) > MAX_ID_CHARS or not (account.isascii() and account.isprintable()):
        raise InputError(
            f"an account name is printable ASCII, at most {MAX_ID_CHARS} characters"
            f" (got {shown(account)})",
            where="--source",
        )


def _bad_rows_error(path: Path, bad: list[BadRow]) -> InputError:
    """The error naming the first bad row of a file imported without ``--skip-bad``."""
    first = bad[0]
    more = f" ({len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
    return InputError(
        f"{first.field}: {first.message}; nothing was imported{more} "
        "(--skip-bad imports the good rows)",
        where=f"{path}:{first.row}",
    )


def record_chunks(
    state_path: StateLocation,
    chunks: Iterator[TradeColumns],
    *,
    key: ImportKey,
    origin: str,
    rows: int,
    skip_bad: bool,
    bad_rows_error: BadRowsError,
    names: RowNames,
    progress: Progress | None = None,
    after_merge: Callable[[MergeStep], None] | None = None,
) -> Recorded:
    """Record validated ``chunks`` as one import (``metrics import`` and ``metrics fetch``).

    A chunk with bad rows (unless ``skip_bad``) stops it: the rest is validated for the
    count, whatever was merged is discarded, and ``bad_rows_error`` is raised. A bad first
    chunk stops it before the state database is opened. A conflicting trade (even with
    ``skip_bad``) stops it too: whatever was merged is discarded and an InputError names
    the trade's two records (``names``)."""
    from stagectl.services.ledger.checkpoints import refresh as refresh_checkpoints
    from stagectl.state.db import open_state
    from stagectl.state.ledger_imports import merge_lock, start_import
    from stagectl.state.ledger_merge import MERGE_BATCH_ROWS

    say = progress or (lambda _: None)
    bad: list[BadRow] = []
    steps: list[float] = []  # how long each merge transaction held the write lock

    def measured(step: MergeStep) -> None:
        steps.append(step.held_s)
        if after_merge is not None:
            after_merge(step)

    def waiting() -> None:
        say(f"waiting for another import into {state_path} to finish")

    reader = _ChunkReader(chunks)
    try:
        first = _next_checked(reader, bad, skip_bad, bad_rows_error)
        with open_state(state_path) as db, merge_lock(db, on_wait=waiting):
            fill_import, abandoned = start_import(db, key, origin)
            _discard_abandoned(db, abandoned, say)
            resumed = (
                f" (resuming after {fill_import.merged_rows})" if fill_import.merged_rows else ""
            )
            say(
                f"writing {rows - len(bad)} fills to {state_path}: merged in transactions"
                f" of up to {MERGE_BATCH_ROWS} fills, visible when the import completes" + resumed
            )
            done = _merge_chunks(
                db, fill_import, first, reader, bad, skip_bad, bad_rows_error, measured
            )
            if done.inserted:
                refresh_checkpoints(db, done.totals)
    except Conflicting as found:
        raise conflict_error(found, names) from None
    finally:
        reader.close()
    return Recorded(
        rows=rows - len(bad),
        inserted=done.inserted,
        bad=bad,
        merge_transactions=len(steps),
        longest_write_s=max(steps, default=0.0),
    )


def _discard_abandoned(db: StateDB, abandoned: list[FillImport], say: Progress) -> None:
    """Delete the rows of imports whose process is gone: a rerun of them starts over."""
    from stagectl.state.ledger_imports import discard_rows

    for other in abandoned:
        say(
            f"discarding an unfinished import of {other.origin} ({other.merged_rows} rows"
            " merged, never visible); run that import again to record it"
        )
        discard_rows(db, other)


def _merge_chunks(
    db: StateDB,
    fill_import: FillImport,
    first: tuple[TradeColumns, TradeBatch] | None,
    reader: _ChunkReader,
    bad: list[BadRow],
    skip_bad: bool,
    bad_rows_error: BadRowsError,
    after_step: Callable[[MergeStep], None],
) -> FillImport:
    """Stage and merge every chunk (the reader prepares the next one while SQLite merges),
    then complete the import; on a bad row or a conflicting trade, discard it and raise."""
    from stagectl.state.fill_conflicts import FillConflict
    from stagectl.state.ledger_imports import complete_import, discard_import
    from stagectl.state.ledger_merge import merge_session

    skip = fill_import.merged_rows  # good rows merged by a run of this import that stopped
    item = first
    with merge_session(db) as session:
        while item is not None:
            _, batch = item
            if skip >= batch.count:
                skip -= batch.count
                reader.go()
            else:
                session.stage(batch)  # in the pause after the last merge transaction
                reader.go()  # the merge below runs in SQLite, without the GIL
                try:
                    fill_import = session.merge(
                        fill_import, batch, skip=skip, after_step=after_step
                    )
                except FillConflict as conflict:
                    discard_import(db, fill_import)
                    row = int(batch.row_numbers[conflict.position])
                    own = conflict.stored.import_id == fill_import.import_id
                    raise Conflicting(conflict, row, own) from None
                skip = 0
            try:
                item = _next_checked(reader, bad, skip_bad, bad_rows_error)
            except InputError:
                discard_import(db, fill_import)
                raise
    return complete_import(db, fill_import)


def _next_checked(
    reader: _ChunkReader, bad: list[BadRow], skip_bad: bool, bad_rows_error: BadRowsError
) -> tuple[TradeColumns, TradeBatch] | None:
    """The next chunk; with bad rows (unless ``skip_bad``) the rest of the file is read for
    the count of bad rows and ``bad_rows_error`` is raised."""
    item = reader.next()
    if item is None:
        return None
    columns, _ = item
    bad.extend(columns.bad)
    if columns.bad and not skip_bad:
        while (rest := reader.next(go=True)) is not None:
            bad.extend(rest[0].bad)
        raise bad_rows_error(bad)
    return item


class _ChunkReader:
    """Reads and validates chunks in a thread, one chunk ahead of the writer, and only
    while the writer is inside SQLite (the merges release the GIL; staging with
    ``executemany`` does not, and a thread competing for the GIL there would stall it on
    every row). ``go()`` lets the reader prepare one more chunk.

    The hand-overs are ``queue.SimpleQueue``s, whose ``put`` and ``get`` are single C
    calls: SIGINT or SIGTERM raising ``Interrupted`` in the writer (``cli._signals``)
    cannot leave one half done. A ``queue.Queue``, ``Semaphore`` or ``Event`` takes its
    lock in Python code, where the exception can land after the lock is taken and before
    the ``with`` block that releases it, and ``close()`` then waits for ever."""

    def __init__(self, chunks: Iterator[TradeColumns]) -> None:
        import queue
        import threading

        self._chunks = chunks
        self._ready: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._go: queue.SimpleQueue[None] = queue.SimpleQueue()  # one per chunk to prepare
        self._go.put(None)
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="metrics-import-reader")
        self._thread.daemon = True
        self._thread.start()

    def _work(self) -> None:
        from stagectl.services.ledger.batches import trade_batch

        try:
            while True:
                self._go.get()
                if self._stop:
                    return
                chunk = next(self._chunks, None)
                if chunk is None:
                    self._ready.put(("end", None))
                    return
                self._ready.put(("chunk", (chunk, trade_batch(chunk))))
        except BaseException as error:  # handed to the writer, which re-raises it
            self._ready.put(("error", error))

    def go(self) -> None:
        self._go.put(None)

    def next(self, *, go: bool = False) -> tuple[TradeColumns, TradeBatch] | None:
        """The next prepared chunk (None at the end); ``go`` first lets the reader go on."""
        if go:
            self.go()
        kind, item = self._ready.get()
        if kind == "error":
            raise item
        return None if kind == "end" else item

    def close(self) -> None:
        self._stop = True
        self._go.put(None)
        self._thread.join()
