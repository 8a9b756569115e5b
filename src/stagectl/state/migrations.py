"""stagectl's schema, as append-only named migrations run by sqlite-utils.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with
the row that records it in ``_sqlite_migrations`` (sqlite-utils' table), so a
failed migration leaves nothing behind and stays pending, and two processes
opening a fresh database at once cannot both apply the same migration: the
pending list is read again under the write lock.

Rules: a landed migration is never edited, renamed or reordered; a change is a
new migration appended here and to :data:`MIGRATION_NAMES`. The DDL is written
as SQL because sqlite-utils' ``create()`` cannot express CHECK constraints or
multi-column UNIQUE constraints, and the schema should read as the contract it
is. Conventions (docs/state.md): tables are STRICT; timestamps are UTC
ISO-8601 text of fixed width (``2024-06-07T08:00:00.000000Z``) so text order is
time order; ledger money (quantities, prices, fees, funding amounts) is a
Decimal stored as TEXT and never a float; analytics series (equity snapshots,
event scores) are REAL; JSON columns end in ``_json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stagectl.state.db import StateDB
from stagectl.state.migration_names import MIGRATION_NAMES, MIGRATION_SET

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations


RUNS_AND_LEDGER = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    config_path TEXT,
    config_sha256 TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'aborted'))
) STRICT;
CREATE INDEX runs_kind_started ON runs (kind, started_at);

CREATE TABLE equity_snapshots (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    ts TEXT NOT NULL,
    equity REAL NOT NULL,
    realized REAL NOT NULL DEFAULT 0,
    unrealized REAL NOT NULL DEFAULT 0,
    fees REAL NOT NULL DEFAULT 0,
    funding REAL NOT NULL DEFAULT 0,
    sleeves_json TEXT NOT NULL DEFAULT '{}',
    UNIQUE (run_id, ts)
) STRICT;

CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    exchange TEXT NOT NULL,
    exchange_order_id TEXT,
    run_id TEXT REFERENCES runs (run_id),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    type TEXT NOT NULL,
    time_in_force TEXT,
    qty TEXT NOT NULL,
    price TEXT,
    stop_price TEXT,
    reduce_only INTEGER NOT NULL DEFAULT 0 CHECK (reduce_only IN (0, 1)),
    status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0',
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX orders_run_status ON orders (run_id, status);
CREATE INDEX orders_symbol_status ON orders (symbol, status);

CREATE TABLE fills (
    id INTEGER PRIMARY KEY,
    exchange TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    run_id TEXT REFERENCES runs (run_id),
    client_order_id TEXT,
    exchange_order_id TEXT,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    fee TEXT NOT NULL,
    fee_currency TEXT,
    liquidity TEXT CHECK (liquidity IN ('maker', 'taker')),
    ts TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (exchange, trade_id)
) STRICT;
CREATE INDEX fills_symbol_ts ON fills (symbol, ts);
CREATE INDEX fills_run_ts ON fills (run_id, ts);

CREATE TABLE positions (
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    qty TEXT NOT NULL,
    avg_entry_price TEXT NOT NULL,
    run_id TEXT REFERENCES runs (run_id),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account, symbol)
) STRICT;

CREATE TABLE funding_payments (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    run_id TEXT REFERENCES runs (run_id),
    symbol TEXT NOT NULL,
    ts TEXT NOT NULL,
    rate TEXT NOT NULL,
    position_qty TEXT,
    amount TEXT NOT NULL,
    UNIQUE (source, symbol, ts)
) STRICT;
CREATE INDEX funding_symbol_ts ON funding_payments (symbol, ts);
"""

RISK_CONTROLS = """
CREATE TABLE trading_flags (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    trading_state TEXT NOT NULL CHECK (trading_state IN ('ACTIVE', 'REDUCE_ONLY', 'HALTED')),
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE trading_flag_history (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    from_state TEXT NOT NULL CHECK (from_state IN ('ACTIVE', 'REDUCE_ONLY', 'HALTED')),
    to_state TEXT NOT NULL CHECK (to_state IN ('ACTIVE', 'REDUCE_ONLY', 'HALTED')),
    reason TEXT NOT NULL,
    source TEXT NOT NULL
) STRICT;

CREATE TABLE guard_decisions (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    run_id TEXT REFERENCES runs (run_id),
    action TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    dry_run INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    rule_results_json TEXT NOT NULL
) STRICT;
CREATE INDEX guard_decisions_ts ON guard_decisions (ts);

CREATE TABLE risk_directives (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    action TEXT NOT NULL,
    sleeve TEXT,
    multiplier REAL NOT NULL CHECK (multiplier >= 0),
    expires_at TEXT,
    guard_decision_id INTEGER REFERENCES guard_decisions (id),
    reason TEXT,
    revoked_at TEXT
) STRICT;
CREATE INDEX risk_directives_ts ON risk_directives (ts);
"""

JOURNAL = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    event_type TEXT NOT NULL,
    severity TEXT NOT NULL DEFAULT 'INFO'
        CHECK (severity IN ('INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    run_id TEXT REFERENCES runs (run_id),
    symbol TEXT,
    message TEXT,
    features_hash TEXT,
    engine_votes_json TEXT,
    consensus_score REAL,
    action TEXT,
    size_usd REAL,
    price REAL,
    expected_edge_bps REAL,
    realized_pnl REAL,
    regime TEXT,
    costs_bps REAL,
    payload_json TEXT
) STRICT;
CREATE INDEX events_run_ts ON events (run_id, ts);
CREATE INDEX events_type_ts ON events (event_type, ts);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    run_id TEXT REFERENCES runs (run_id),
    guard_decision_id INTEGER REFERENCES guard_decisions (id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    action TEXT NOT NULL,
    indicator_value REAL,
    message TEXT NOT NULL,
    market_state_json TEXT NOT NULL DEFAULT '{}',
    fills_json TEXT NOT NULL DEFAULT '[]'
) STRICT;
CREATE INDEX incidents_ts ON incidents (ts);
"""

REPORTS = """
CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    path TEXT,
    sha256 TEXT NOT NULL,
    key_id TEXT,
    signed INTEGER NOT NULL CHECK (signed IN (0, 1)),
    generated_at TEXT NOT NULL
) STRICT;
CREATE INDEX reports_kind_generated ON reports (kind, generated_at);
"""


PAPER_BOOK = """
CREATE TABLE paper_books (
    account TEXT PRIMARY KEY,
    book_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE paper_records (
    account TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('order', 'fill', 'funding')),
    record_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    ts TEXT NOT NULL,
    body_json TEXT NOT NULL,
    PRIMARY KEY (account, kind, record_id)
) STRICT;
CREATE INDEX paper_records_kind_ts ON paper_records (account, kind, ts);
"""


# Per-symbol fill count and exact net position, kept by every fill insert (state.ledger,
# state.ledger_totals), so the lots open at a time need no scan of the history. The
# (run_id, ts) index only serves queries by run (``run_id = ?``); imported and fetched fills
# have no run, so it becomes partial and a bulk import no longer writes an entry per fill
# into it (about a fifth of an import's write time at a million fills, docs/ledger.md).
LEDGER_TOTALS = """
CREATE TABLE fill_totals (
    symbol TEXT PRIMARY KEY,
    fills INTEGER NOT NULL CHECK (fills >= 0),
    position TEXT NOT NULL
) STRICT;

DROP INDEX fills_run_ts;
CREATE INDEX fills_run_ts ON fills (run_id, ts) WHERE run_id IS NOT NULL;
"""

# So that ``metrics import`` can merge a file in short transactions under one import
# record: the rows of an unfinished import stay invisible to every reader
# (state.fill_visibility) until the transaction that marks it complete, which also adds its
# per-symbol totals to fill_totals (docs/ledger.md, "Importing trades").
# ``fill_import_totals`` holds, per import and symbol, the rows it has in ``fills`` and
# their exact net book delta (NULL: a fee that cannot be booked). ``ADD COLUMN`` leaves
# existing fills with ``import_id`` NULL: visible, as before.
# Depends only on 0001 (fills) and 0006's conventions, not on any later migration.
FILL_IMPORTS = """
CREATE TABLE fill_imports (
    id INTEGER PRIMARY KEY,
    content_sha256 TEXT NOT NULL,
    account TEXT NOT NULL,
    source TEXT NOT NULL,
    symbol TEXT,
    origin TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('merging', 'discarding', 'discarded', 'complete')),
    merged_rows INTEGER NOT NULL DEFAULT 0 CHECK (merged_rows >= 0),
    inserted INTEGER NOT NULL DEFAULT 0 CHECK (inserted >= 0),
    after_fill_id INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT
) STRICT;
CREATE INDEX fill_imports_unfinished ON fill_imports (id) WHERE status <> 'complete';

CREATE TABLE fill_import_totals (
    import_id INTEGER NOT NULL REFERENCES fill_imports (id),
    symbol TEXT NOT NULL,
    fills INTEGER NOT NULL CHECK (fills >= 0),
    position TEXT,
    PRIMARY KEY (import_id, symbol)
) STRICT;

ALTER TABLE fills ADD COLUMN import_id INTEGER REFERENCES fill_imports (id);
"""


# One state for paper and live (docs/state.md, "One state"): the trading state and the
# risk directives are kept per mode, since a kill switch on the paper book must not stop
# the live book (and a paper guard's directive must not size live orders); a run carries
# its account. The one desk-wide trading-state row applied to every run that shared the
# file, so it becomes the row of both modes (a merged paper.db then replaces the paper
# one: state.legacy). A directive or history row of no known mode keeps mode NULL:
# recorded before modes were separated, it applies to both. ``legacy_merges`` records a
# merged paper.db (by the merge id stamped into that file) so a rerun never copies it twice.
ONE_STATE = """
ALTER TABLE runs ADD COLUMN account TEXT;
UPDATE runs SET account = 'paper:' || run_id WHERE kind = 'run-live' AND mode = 'paper';
UPDATE runs SET account = coalesce(
    (SELECT json_extract(e.payload_json, '$.exchange') FROM events e
      WHERE e.run_id = runs.run_id AND e.event_type = 'RUN_STARTED' LIMIT 1),
    'binanceusdm')
 WHERE kind = 'run-live' AND mode = 'live';

CREATE TABLE trading_states (
    mode TEXT PRIMARY KEY CHECK (mode IN ('paper', 'live')),
    trading_state TEXT NOT NULL CHECK (trading_state IN ('ACTIVE', 'REDUCE_ONLY', 'HALTED')),
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
INSERT INTO trading_states (mode, trading_state, reason, source, updated_at)
    SELECT m.mode, f.trading_state, f.reason, f.source, f.updated_at
      FROM trading_flags f CROSS JOIN (SELECT 'paper' AS mode UNION ALL SELECT 'live') m;
DROP TABLE trading_flags;

ALTER TABLE trading_flag_history ADD COLUMN mode TEXT CHECK (mode IN ('paper', 'live'));

ALTER TABLE risk_directives ADD COLUMN mode TEXT CHECK (mode IN ('paper', 'live'));
UPDATE risk_directives SET mode = (
    SELECT r.mode FROM guard_decisions g JOIN runs r ON r.run_id = g.run_id
     WHERE g.id = risk_directives.guard_decision_id);
CREATE INDEX risk_directives_mode_ts ON risk_directives (mode, ts);

CREATE INDEX equity_snapshots_ts ON equity_snapshots (ts);
CREATE INDEX funding_run_ts ON funding_payments (run_id, ts) WHERE run_id IS NOT NULL;

CREATE TABLE legacy_merges (
    id INTEGER PRIMARY KEY,
    merge_id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    merged_at TEXT NOT NULL,
    rows_json TEXT NOT NULL
) STRICT;
"""


# The desk's ledger counts no simulated fill (paper runs, recorded backtests:
# state.fill_visibility.ledger_clause). One state put paper runs' fills in ``fills``; the
# totals of a symbol that has simulated fills are dropped (readers take the history path
# until the next insert rebuilds them without the simulated rows), and a partial index
# counts the simulated fills per symbol index-only, for the totals' trust check.
SIMULATED_FILLS = """
CREATE INDEX fills_simulated ON fills (symbol) WHERE source IN ('paper', 'backtest');
DELETE FROM fill_totals
 WHERE symbol IN (SELECT DISTINCT symbol FROM fills WHERE source IN ('paper', 'backtest'));
"""


# A directive's life (domain.directives): pending until a human confirms (live mode), active,
# executed (FLATTEN_ALL once the book is flat and latched), cancelled or revoked; what fired
# it; its confirmation deadline and what happens then; who confirmed or closed it; the run
# whose guard decision issued it (a paper directive binds that run's book only: paper books
# are per run, and a replay must not obey another replay's directives). Rows written
# before are active, or revoked where ``revoked_at`` is set.
DIRECTIVE_LIFECYCLE = """
ALTER TABLE risk_directives ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
    CHECK (state IN ('pending', 'active', 'executed', 'cancelled', 'revoked'));
UPDATE risk_directives SET state = 'revoked' WHERE revoked_at IS NOT NULL;
ALTER TABLE risk_directives ADD COLUMN rule TEXT;
ALTER TABLE risk_directives ADD COLUMN indicator_value REAL;
ALTER TABLE risk_directives ADD COLUMN confirm_by TEXT;
ALTER TABLE risk_directives ADD COLUMN on_timeout TEXT
    CHECK (on_timeout IN ('execute', 'escalate'));
ALTER TABLE risk_directives ADD COLUMN confirmed_at TEXT;
ALTER TABLE risk_directives ADD COLUMN confirmed_by TEXT;
ALTER TABLE risk_directives ADD COLUMN executed_at TEXT;
ALTER TABLE risk_directives ADD COLUMN escalated_at TEXT;
ALTER TABLE risk_directives ADD COLUMN closed_by TEXT;
ALTER TABLE risk_directives ADD COLUMN run_id TEXT;
UPDATE risk_directives SET run_id = (
    SELECT g.run_id FROM guard_decisions g WHERE g.id = risk_directives.guard_decision_id
);
"""


# A REDUCE_RISK_50 or DISABLE_SLEEVE in force is re-evaluated one period after it became
# active, then one period after each review (domain.directives): when the last review was.
DIRECTIVE_REVIEWS = """
ALTER TABLE risk_directives ADD COLUMN reviewed_at TEXT;
"""


# The weekly review's weight-drift decision for a run (seed 003 §3.1), the one way it
# reaches the trading loop: a REBALANCE is ``pending`` until the run's loop executes it at
# its next bar (``executing`` from the bar's write-ahead, ``executed`` with its real cost
# at that bar's settlement), or a newer review of the run supersedes it, or it expires
# unexecuted, or the loop refuses it (the plan's weights are not the ones the run
# trades). A SKIP is recorded ``skipped``. One review per run and as-of time. The loop
# reads a bar's orders by (run, decision time) to find what an order left unfilled.
REBALANCE_PLANS = """
CREATE TABLE rebalance_plans (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    as_of TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('REBALANCE', 'SKIP')),
    state TEXT NOT NULL CHECK (state IN
        ('pending', 'executing', 'executed', 'skipped', 'superseded', 'expired', 'refused')),
    limit_timeout_s REAL NOT NULL CHECK (limit_timeout_s >= 0),
    plan_json TEXT NOT NULL,
    bar_ts TEXT,
    execution_json TEXT,
    cost_json TEXT,
    reason TEXT,
    recorded_at TEXT NOT NULL,
    closed_at TEXT,
    UNIQUE (run_id, as_of)
) STRICT;
CREATE INDEX rebalance_plans_run_state ON rebalance_plans (run_id, state);
CREATE INDEX orders_run_created ON orders (run_id, created_at);
"""


# When an alert was last sent, per alert key (the risk guard's ``risk-guard:<run>:<rule>``
# and ``:<sleeve>``), at which severity and through which channels: an hourly guard does
# not re-send the same rule at the same severity within the notify cooldown, across
# processes (cron runs one per hour).
NOTIFICATION_LOG = """
CREATE TABLE notification_log (
    alert_key TEXT PRIMARY KEY,
    severity TEXT NOT NULL CHECK (severity IN ('INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    sent_at TEXT NOT NULL,
    channels TEXT NOT NULL
) STRICT;
"""


# Where ``fill_totals`` was last known exact (state.ledger_totals, "Trust"): the largest
# fill id after the last write that kept the totals. A reader that finds it equal to
# ``max(id)`` (one index probe) trusts the totals without counting the symbol's fills (an
# index scan of its whole history, ~60 ms per million fills). A write by other means
# leaves the mark behind (an insert) or removes it (the trigger: a deleted ledger row), and
# readers count again. Set here only when every totals row matches its count.
FILL_TOTALS_MARK = """
CREATE TABLE fill_totals_mark (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL
) STRICT;

INSERT INTO fill_totals_mark (one, last_id)
SELECT 1, (SELECT coalesce(max(id), 0) FROM fills)
WHERE NOT EXISTS (
    SELECT 1 FROM fill_totals AS t WHERE t.fills <> (
        SELECT count(*) FROM fills AS f WHERE f.symbol = t.symbol
        AND f.source NOT IN ('paper', 'backtest')
        AND (f.import_id IS NULL
             OR f.import_id NOT IN (SELECT id FROM fill_imports WHERE status <> 'complete'))
    )
);

CREATE TRIGGER fills_deleted_unmark AFTER DELETE ON fills
WHEN OLD.import_id IS NULL
    OR OLD.import_id NOT IN (SELECT id FROM fill_imports WHERE status <> 'complete')
BEGIN
    DELETE FROM fill_totals_mark;
END;
"""


# The last Telegram update the on-call bot (``stagectl telegram serve``) took, per bot
# (the numeric id before the token's colon, not a secret). It is written in the same
# transaction as the update's event, before the command acts, so a restarted bot asks
# Telegram for the updates after it and never runs a command twice.
TELEGRAM_OFFSETS = """
CREATE TABLE telegram_offsets (
    bot_id TEXT PRIMARY KEY,
    last_update_id INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
"""


# One driver per run (docs/run-live.md, "One driver per run"): the run-live process that
# drives a run holds its lease, renewed by a heartbeat; another run-live for the same run
# refuses while the lease is live and takes over once it has expired (or, on the same host,
# once its holder's process is gone). ``holder`` is ``host:pid:token``.
RUN_LEASES = """
CREATE TABLE run_leases (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    acquired_at TEXT NOT NULL,
    renewed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
"""


# The run-live loop's own time per bar (docs/attribution.md, "Loop latency"): the open
# (read, decide, write ahead, send) and the settlement, without the waits for the market
# and for limit orders; ``stagectl health`` reads p50/p99 over the recent bars.
LOOP_LATENCY = """
CREATE TABLE loop_latency (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    bar_ts TEXT NOT NULL,
    open_ms REAL NOT NULL,
    settle_ms REAL NOT NULL,
    total_ms REAL NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (run_id, bar_ts)
) STRICT;
CREATE INDEX loop_latency_recorded ON loop_latency (recorded_at);
"""


# A parent order the execution router works as child slices over bars (docs/run-live.md,
# "Working a parent order"): what it is (side, quantity, style, the TWAP/iceberg schedule)
# and how far it got (the next slice's index, the quantity sent, the bar of the last
# slice), written in the same transaction as each child's write-ahead record, so a restart
# resumes it at the slice it had reached. The children are ordinary ``orders`` rows whose
# client ids derive from ``parent_id`` and the slice's index.
PARENT_ORDERS = """
CREATE TABLE parent_orders (
    parent_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    reduce_only INTEGER NOT NULL CHECK (reduce_only IN (0, 1)),
    style TEXT NOT NULL,
    reason TEXT NOT NULL,
    planned INTEGER NOT NULL CHECK (planned >= 1),
    schedule_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('working', 'done', 'canceled')),
    next_index INTEGER NOT NULL CHECK (next_index >= 0),
    sent_qty TEXT NOT NULL,
    last_bar TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    note TEXT
) STRICT;
CREATE INDEX parent_orders_run_status ON parent_orders (run_id, status);
"""


# The FIFO lots open before a time, per symbol (state.ledger_checkpoints): ``metrics window``
# starts from the newest checkpoint before its window and books only the fills after it,
# instead of walking back through the history for the lots a large position is made of.
# ``lots`` is a JSON list of ``[signed qty, price, trade_id, ts]`` (Decimal and time text, as
# stored in ``fills``), oldest first. A derived cache: every insert of ledger fills deletes
# the checkpoints it makes stale, and readers use one only while ``fill_totals_mark`` is at
# the largest fill id (every write since went through ``state.ledger``).
FILL_LOT_CHECKPOINTS = """
CREATE TABLE fill_lot_checkpoints (
    symbol TEXT NOT NULL,
    before_ts TEXT NOT NULL,
    lots TEXT NOT NULL,
    PRIMARY KEY (symbol, before_ts)
) STRICT;
"""


SCRIPTS: tuple[str, ...] = (
    RUNS_AND_LEDGER,
    RISK_CONTROLS,
    JOURNAL,
    REPORTS,
    PAPER_BOOK,
    LEDGER_TOTALS,
    ONE_STATE,
    FILL_IMPORTS,
    SIMULATED_FILLS,
    DIRECTIVE_LIFECYCLE,
    DIRECTIVE_REVIEWS,
    REBALANCE_PLANS,
    NOTIFICATION_LOG,
    FILL_TOTALS_MARK,
    TELEGRAM_OFFSETS,
    RUN_LEASES,
    LOOP_LATENCY,
    PARENT_ORDERS,
    FILL_LOT_CHECKPOINTS,
)
"""The migration scripts, in the order of MIGRATION_NAMES."""


def _build() -> Migrations:
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for name, script in zip(MIGRATION_NAMES, SCRIPTS, strict=True):
        migrations(name=name)(_ScriptMigration(name, script))
    return migrations


class _ScriptMigration:
    """A migration that runs one fixed SQL script."""

    def __init__(self, name: str, script: str) -> None:
        self.__name__ = name
        self.script = script

    def __call__(self, db: Database, /) -> None:
        db.executescript(self.script)


def registered_names() -> list[str]:
    """The names registered with sqlite-utils, in order (kept equal to MIGRATION_NAMES)."""
    from sqlite_utils import Database

    empty = Database(memory=True, execute_plugins=False)
    return [migration.name for migration in _build().pending(empty)]


def apply_migrations(db: StateDB, *, stop_before: str | None = None) -> list[str]:
    """Apply pending migrations one transaction each; return the names applied.

    ``stop_before`` names a migration to stop at (it and later ones stay
    pending), as sqlite-utils' ``Migrations.apply`` does: tests use it to build
    databases at every earlier schema version.
    """
    if db.backend == "postgresql":
        return _apply_postgres(db, stop_before)
    from sqlite_utils import Database

    migrations = _build()
    sdb = Database(db.sqlite_conn, execute_plugins=False)
    applied: list[str] = []
    while True:
        with db.transaction():
            pending = [migration.name for migration in migrations.pending(sdb)]
            if not pending or pending[0] == stop_before:
                return applied
            migrations.apply(sdb, stop_before=pending[1:])
        applied.append(pending[0])


def _apply_postgres(db: StateDB, stop_before: str | None) -> list[str]:
    """The same migrations on PostgreSQL (``state.pg.schema_script``), one transaction
    each with the row that records it, the pending list re-read under the write lock."""
    from datetime import UTC, datetime

    from stagectl.state import pg

    conn = db.conn
    assert isinstance(conn, pg.PgConnection)
    applied: list[str] = []
    while True:
        with db.transaction():
            pg.ensure_migrations_table(conn)
            pending = db.pending_migrations()
            if not pending or pending[0] == stop_before:
                return applied
            name = pending[0]
            conn.executescript(pg.schema_script(name, SCRIPTS[MIGRATION_NAMES.index(name)]))
            conn.execute(
                f"INSERT INTO {pg.MIGRATIONS_TABLE} (migration_set, name, applied_at)"
                " VALUES (?, ?, ?)",
                (MIGRATION_SET, name, datetime.now(UTC).isoformat()),
            )
        applied.append(name)
