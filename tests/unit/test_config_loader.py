"""The config layer: every shipped file loads; every kind of bad file is one exit-2 error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stagectl.config import loader
from stagectl.config.core import CoreConfig
from stagectl.config.home import Home
from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.config.strategy import StrategyConfig
from stagectl.errors import EXIT_USAGE, ConfigError
from tests.conftest import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "config"
CORE_TEXT = (CONFIG_DIR / "core.yaml").read_text(encoding="utf-8")

LOADERS: list[Callable[..., tuple[Any, Any]]] = [
    loader.load_core,
    loader.load_baseline,
    loader.load_strategy,
    loader.load_risk_guard,
    loader.load_stage3,
    loader.load_maker,
    loader.load_risk_presets,
]


def _line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line containing ``fragment``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in text")


def _load_core_text(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "core.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        loader.load_config(path, CoreConfig)
    assert caught.value.exit_code == EXIT_USAGE
    return caught.value


@pytest.mark.parametrize("load", LOADERS, ids=lambda f: f.__name__)
def test_every_shipped_config_file_loads_from_the_repository(load: Callable[..., Any]) -> None:
    model, source = load(Home.resolve(REPO_ROOT))
    assert source.path.parent.is_relative_to(CONFIG_DIR)
    assert source.packaged is False
    assert model.model_config["frozen"] is True


@pytest.mark.parametrize("load", LOADERS, ids=lambda f: f.__name__)
def test_an_empty_home_falls_back_to_the_packaged_default(
    load: Callable[..., Any], tmp_path: Path
) -> None:
    _, source = load(Home.resolve(tmp_path))
    assert source.packaged is True
    assert source.path.is_file()


def test_a_home_config_file_wins_over_the_packaged_default(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    local = tmp_path / "config" / "core.yaml"
    local.write_text(CORE_TEXT.replace("default_weight: 1.15", "default_weight: 1.2"))
    core, source = loader.load_core(Home.resolve(tmp_path))
    assert source.path == local and not source.packaged
    assert core.market_intel.default_weight == 1.2


def test_shipped_core_holds_the_workshop_values() -> None:
    core, _ = loader.load_core(Home.resolve(REPO_ROOT))
    assert core.stress_lab.thresholds.spread_bps == 45
    assert core.stress_lab.scenarios["blackout"].overrides.present() == {
        "latency_ms": 180,
        "blackout_min": 55,
    }
    assert core.portfolio_governor.strategies["mean_reversion"].max_signals == 5
    assert core.market_intel.mandatory_symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def test_shipped_risk_guard_encodes_every_runbook_indicator_and_action() -> None:
    guard, _ = loader.load_risk_guard(Home.resolve(REPO_ROOT))
    assert len(guard.indicators) == 12
    assert {r.indicator for r in guard.rules} == set(guard.indicators)
    by_id = {r.id: r for r in guard.rules}
    assert (by_id["mdd_limit"].action, by_id["mdd_limit"].severity) == ("FLATTEN_ALL", "CRITICAL")
    assert by_id["slippage_high_5d"].consecutive_days == 5
    assert by_id["position_state_invalid"].value == (-1.0, 0.0, 1.0)


def test_shipped_strategy_sleeves_match_the_runbook() -> None:
    strategy, _ = loader.load_strategy(Home.resolve(REPO_ROOT))
    eth, sol = strategy.sleeves
    assert (eth.symbol, eth.lookbacks, eth.weight_pct) == ("ETHUSDT", (72, 168, 336, 720), 54)
    assert (sol.symbol, sol.lookbacks, sol.weight_pct) == ("SOLUSDT", (168,), 46)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    text = CORE_TEXT.replace("smoothing: 0.55", "smoothing: [0.55")
    error = _load_core_text(tmp_path, text)
    opened = _line_of(CORE_TEXT, "smoothing: 0.55")
    assert error.where == f"{tmp_path / 'core.yaml'}:{opened + 1}"
    assert error.message.startswith("YAML syntax error:")
    assert f"line {opened}" in error.message


def test_wrong_type_names_the_key_path_and_its_line(tmp_path: Path) -> None:
    error = _load_core_text(tmp_path, CORE_TEXT.replace("spread_bps: 45", 'spread_bps: "45"'))
    assert error.where == f"{tmp_path / 'core.yaml'}:{_line_of(CORE_TEXT, 'spread_bps: 45')}"
    assert error.message.startswith("stress_lab.thresholds.spread_bps: ")
    assert "'45'" in error.message


def test_unknown_key_names_the_key_path_and_its_line(tmp_path: Path) -> None:
    text = CORE_TEXT.replace("    spread_bps: 45", "    spred_bps: 45")
    error = _load_core_text(tmp_path, text)
    assert str(error.where).endswith(f":{_line_of(CORE_TEXT, 'spread_bps: 45')}")
    assert error.message.startswith(
        "stress_lab.thresholds.spred_bps: unknown key; did you mean 'spread_bps'?"
    )


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    lines = [ln for ln in CORE_TEXT.splitlines() if "multiplier: 1.45" not in ln]
    error = _load_core_text(tmp_path, "\n".join(lines))
    parent = _line_of(CORE_TEXT, "mean_reversion:")
    assert str(error.where).endswith(f":{parent}")
    assert error.message.startswith(
        "portfolio_governor.strategies.mean_reversion.multiplier: missing required key"
    )


def test_list_items_are_named_by_index(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "risk_guard_alt_ensemble.yaml").read_text(encoding="utf-8")
    bad = text.replace("severity: CRITICAL             # seed 003 §2.1 #3", "severity: SEVERE")
    path = tmp_path / "guard.yaml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        loader.load_config(path, RiskGuardConfig)
    assert caught.value.message.startswith("rules[3].severity: ")
    assert caught.value.where == f"{path}:{_line_of(bad, 'severity: SEVERE')}"


def test_a_rule_on_an_undefined_indicator_is_refused(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "risk_guard_alt_ensemble.yaml").read_text(encoding="utf-8")
    start = text.index("  trades_24h:                      # 12")
    end = text.index("# One rule per runbook line.")
    path = tmp_path / "guard.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(ConfigError, match="indicator trades_24h is not defined"):
        loader.load_config(path, RiskGuardConfig)


def test_a_sleeve_with_the_wrong_lookback_field_is_refused(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "futures_alt_ensemble.yaml").read_text(encoding="utf-8")
    path = tmp_path / "strategy.yaml"
    path.write_text(text.replace("lookback_bars: 168", "lookbacks_bars: [168]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sleeves\[1\]: tsmom_ema takes lookback_bars"):
        loader.load_config(path, StrategyConfig)


def test_duplicate_keys_are_refused_at_the_second_one(tmp_path: Path) -> None:
    text = CORE_TEXT.replace("    spread_bps: 45", "    spread_bps: 45\n    spread_bps: 46")
    error = _load_core_text(tmp_path, text)
    assert str(error.where).endswith(f":{_line_of(CORE_TEXT, 'spread_bps: 45') + 1}")
    assert error.message == "stress_lab.thresholds.spread_bps: duplicate key"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n", "just text\n"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    error = _load_core_text(tmp_path, text)
    assert error.where == f"{tmp_path / 'core.yaml'}:1"


def test_a_missing_file_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "core.yaml"
    with pytest.raises(ConfigError) as caught:
        loader.load_core(Home.resolve(tmp_path), missing)
    assert caught.value.where == str(missing)
    assert "not found" in caught.value.message


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        loader.load_config(tmp_path, CoreConfig)


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert loader.file_sha256(path) == expected


def test_models_are_frozen() -> None:
    core, _ = loader.load_core(Home.resolve(REPO_ROOT))
    with pytest.raises(ValueError, match="frozen"):
        core.stress_lab.thresholds.spread_bps = 1.0


def test_the_shipped_stage3_profile_names_a_four_sleeve_strategy_within_its_caps() -> None:
    home = Home.resolve(REPO_ROOT)
    stage3, source = loader.load_stage3(home)
    assert loader.is_stage3_file(source) and not loader.is_stage3_file(
        CONFIG_DIR / "futures_alt_ensemble.yaml"
    )
    assert stage3.run is not None and stage3.run.stop_limits is True
    strategy, strategy_source = loader.load_profile_strategy(home, stage3, source)
    assert strategy_source.path == CONFIG_DIR / "stage3_strategy.yaml"
    assert [s.symbol for s in strategy.sleeves] == list(stage3.symbols)
    assert strategy.cash_symbol is None and strategy.audit is None
    assert stage3.risk.max_impact_bps == 50 and stage3.risk.stop_distance_pct == 2
    assert stage3.risk.sizing_mode == "conservative"


def test_a_profile_strategy_with_a_symbol_the_profile_does_not_cap_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "stage3.yaml").write_text((CONFIG_DIR / "stage3.yaml").read_text())
    strategy = (CONFIG_DIR / "stage3_strategy.yaml").read_text()
    (tmp_path / "stage3_strategy.yaml").write_text(strategy.replace("XRPUSDT", "DOGEUSDT"))
    home = Home.resolve(tmp_path)
    stage3, source = loader.load_stage3(home, tmp_path / "stage3.yaml")
    with pytest.raises(ConfigError) as caught:
        loader.load_profile_strategy(home, stage3, source)
    assert caught.value.where == str(tmp_path / "stage3_strategy.yaml")
    assert "DOGEUSDT" in caught.value.message


def test_a_cash_symbol_that_is_also_a_sleeve_is_still_refused(tmp_path: Path) -> None:
    strategy = (CONFIG_DIR / "stage3_strategy.yaml").read_text()
    path = tmp_path / "four.yaml"
    path.write_text(strategy + "cash_symbol: BTCUSDT\n")
    with pytest.raises(ConfigError) as caught:
        loader.load_config(path, StrategyConfig)
    assert "cash_symbol BTCUSDT is also a traded sleeve" in caught.value.message
