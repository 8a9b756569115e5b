"""The names of stagectl's schema migrations, in order, importable without sqlite-utils.

``stagectl state info`` compares these with the applied ones without loading
sqlite-utils (which imports pandas). :mod:`stagectl.state.migrations` registers
one function per name, in this order; a test keeps the two in step.

Append-only: a name, once landed, is never renamed, removed or reordered, and
its migration is never edited. A schema change is a new migration at the end.
"""

from __future__ import annotations

MIGRATION_SET = "stagectl"
MIGRATIONS_TABLE = "_sqlite_migrations"

MIGRATION_NAMES: tuple[str, ...] = (
    "0001_runs_and_ledger",
    "0002_risk_controls",
    "0003_journal",
    "0004_reports",
    "0005_paper_book",
    "0006_ledger_totals",
    "0007_one_state",
    "0008_fill_imports",
    "0009_simulated_fills",
    "0010_directive_lifecycle",
    "0011_directive_reviews",
    "0012_rebalance_plans",
    "0013_notification_log",
    "0014_fill_totals_mark",
    "0015_telegram_offsets",
    "0016_run_leases",
    "0017_loop_latency",
    "0018_parent_orders",
    "0019_fill_lot_checkpoints",
)
