"""The fixed values of options, for shell completion.

Each function is the ``autocompletion`` of the options that take its values.
scripts/gen_completions.py calls it once and writes the values into the static
completion scripts, so pressing TAB starts no Python. Each reads the one place its
values are defined (a packaged config, the bundled data, the code that validates
them); every import is inside the function, off the ``--help`` path.
"""

from __future__ import annotations


def preset_names() -> list[str]:
    """The risk presets of the packaged risk_presets.yaml (``--preset``)."""
    from stagectl.config.home import defaults_dir
    from stagectl.config.loader import load_config
    from stagectl.config.risk_presets import RiskPresetsConfig

    return list(load_config(defaults_dir() / "risk_presets.yaml", RiskPresetsConfig).presets)


def scenario_names() -> list[str]:
    """The Stress Lab scenarios of the packaged configs on the bundled data (``--scenario``)."""
    from stagectl.config.home import Home, defaults_dir
    from stagectl.services.stage6.stress_lab import scenario_names as names

    packaged = defaults_dir()
    return names(
        Home(packaged),
        config=packaged / "core.yaml",
        scenarios_file=packaged / "stress_scenarios.yaml",
    )


def bundled_symbols() -> list[str]:
    """The symbols of the bundled sample data (``--symbol``)."""
    from stagectl.data.bundled import bundled_datasets

    return sorted({dataset.symbol for dataset in bundled_datasets()})


def replay_evaluations() -> list[str]:
    """``risk-guard --replay --eval``: how often the replayed guard judges."""
    from stagectl.services.guard.replay import EVALUATIONS

    return list(EVALUATIONS)


def trade_formats() -> list[str]:
    """``metrics import --format``: the trade file formats."""
    from stagectl.data.trade_files import FORMATS

    return list(FORMATS)


def replay_speeds() -> list[str]:
    """``run-live --speed``: no waiting, real time, and common multiples (any ``Nx``
    from 1x to 1,000,000x is taken)."""
    return ["max", "1x", "60x", "3600x", "86400x"]
