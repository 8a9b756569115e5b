"""The bounds on what a config file or a command-line number may hold (docs/configuration.md,
"Limits"; docs/cli.md, "Option bounds").

One module owns the numbers so the loader, the config models and the CLI's option
types agree. Only constants: the CLI imports this on its fast path.
"""

from __future__ import annotations

MAX_CONFIG_BYTES = 1024 * 1024
"""A config file is read only up to 1 MiB; the shipped ones are under 10 KiB."""

MAX_CONFIG_NODES = 10_000
"""Keys, values and list items of one document, every alias counted at each use (the
largest shipped config has under 500): an alias bomb is refused before it is built."""

MAX_CONFIG_DEPTH = 32
"""Nesting levels of mappings and lists (the shipped configs use at most 5)."""

MAX_INT_DIGITS = 18
"""An integer literal in a config has at most this many digits (int64 has 19)."""

MAX_MAGNITUDE = 1e12
"""No number in a config is larger in magnitude: a trillion dollars, units or bps."""

MAX_DURATION_DAYS = 3653
"""The longest span a config field or a CLI duration may name: 10 years."""

MAX_LOOKBACK_BARS = 100_000
"""A lookback or indicator period in bars: over 11 years of 1h bars, 69 days of 1m bars."""

MAX_COUNT = 1_000_000
"""A count (signals, cancels, warnings, losses in a row)."""

MAX_PERIODS_PER_YEAR = 527_040
"""Annualisation periods: at most one a minute (the minutes of a leap year)."""

SECONDS_PER_DAY = 86_400
MAX_DURATION_S = MAX_DURATION_DAYS * SECONDS_PER_DAY
MAX_DURATION_MIN = MAX_DURATION_DAYS * 1_440
MAX_DURATION_H = MAX_DURATION_DAYS * 24
