"""Hostile config files cost nothing and are one ``file:line: key.path: message`` error:
an alias bomb, a recursive alias, deep nesting, an oversized file, a 5,000-digit integer,
``.inf``/``.nan``, absurd magnitudes, unbuildable values and control characters
(docs/configuration.md, "Limits"). And every number of every config model is bounded.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import stagectl.config
from stagectl.config import loader
from stagectl.config._base import ConfigModel
from stagectl.config.baseline import BaselineConfig
from stagectl.config.core import CoreConfig
from stagectl.config.stage3 import Stage3Config
from stagectl.config.strategy import StrategyConfig
from stagectl.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.hostile_yaml import RECURSIVE_ALIAS, alias_bomb

CONFIG_DIR = REPO_ROOT / "config"
STRATEGY_TEXT = (CONFIG_DIR / "futures_alt_ensemble.yaml").read_text(encoding="utf-8")


def _refused(tmp_path: Path, text: str | bytes, model: type[BaseModel] = CoreConfig) -> ConfigError:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        loader.load_config(path, model)
    assert "\n" not in str(caught.value)
    return caught.value


def _strategy_with(tmp_path: Path, old: str, new: str) -> ConfigError:
    assert old in STRATEGY_TEXT
    return _refused(tmp_path, STRATEGY_TEXT.replace(old, new, 1), StrategyConfig)


@pytest.mark.parametrize("levels", [6, 10])
def test_an_alias_bomb_is_refused_before_anything_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, levels: int
) -> None:
    def never(*_: Any) -> Any:
        raise AssertionError("the bomb reached construction")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", never)
    error = _refused(tmp_path, alias_bomb(levels))
    assert "more than 10,000 keys and values" in error.message
    assert "alias" in error.message
    assert str(error.where).startswith(f"{tmp_path / 'config.yaml'}:")


def test_aliases_within_the_budget_still_load(tmp_path: Path) -> None:
    path = tmp_path / "strategy.yaml"
    first = STRATEGY_TEXT.replace("disagree_weight: 0.0", "disagree_weight: &flat 0.0", 1)
    path.write_text(first.replace("disagree_weight: 0.0", "disagree_weight: *flat", 1))
    strategy = loader.load_config(path, StrategyConfig)
    assert [s.disagree_weight for s in strategy.sleeves] == [0.0, 0.0]


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, RECURSIVE_ALIAS)
    assert error.message == "market_intel.again: an alias refers to a collection that contains it"


def test_nesting_past_the_limit_is_refused_without_a_recursion_error(tmp_path: Path) -> None:
    error = _refused(tmp_path, "a: " + "[" * 990 + "]" * 990 + "\n")
    assert "nested more than 32 levels deep" in error.message


def test_a_file_over_one_mebibyte_is_refused_with_its_size(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "core.yaml").read_text(encoding="utf-8")
    padding = "# padding\n" * (1024 * 1024 // 10 + 1)
    error = _refused(tmp_path, text + padding)
    path = tmp_path / "config.yaml"
    assert error.where == str(path)
    assert "larger than 1 MiB" in error.message
    assert f"({path.stat().st_size:,} bytes)" in error.message


def test_a_five_thousand_digit_integer_is_a_config_error(tmp_path: Path) -> None:
    error = _strategy_with(tmp_path, "lookback_bars: 168", "lookback_bars: " + "9" * 5000)
    assert error.message == "sleeves[1].lookback_bars: integer of 5000 digits is out of range"
    line = STRATEGY_TEXT.splitlines().index("    lookback_bars: 168") + 1
    assert error.where == f"{tmp_path / 'config.yaml'}:{line}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000000000000000000000", "integer of 22 digits is out of range"),
        ("100001", "less than or equal to 100000"),
        ("0", "greater than 0"),
    ],
)
def test_lookback_bars_have_a_real_bound(tmp_path: Path, value: str, expected: str) -> None:
    error = _strategy_with(tmp_path, "lookback_bars: 168", f"lookback_bars: {value}")
    assert error.message.startswith("sleeves[1].lookback_bars: ")
    assert expected in error.message


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", "1.0e+999"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    error = _strategy_with(tmp_path, "initial_equity_usd: 10000", f"initial_equity_usd: {value}")
    assert error.message.startswith("initial_equity_usd: Input should be a finite number")


def test_an_absurd_magnitude_is_refused(tmp_path: Path) -> None:
    error = _strategy_with(tmp_path, "initial_equity_usd: 10000", "initial_equity_usd: 1.0e+15")
    assert error.message.startswith("initial_equity_usd: Input should be less than or equal to")


def test_a_duration_is_at_most_ten_years_in_any_unit(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "stage3.yaml").read_text(encoding="utf-8")
    assert "duration_h: 24" in text
    error = _refused(tmp_path, text.replace("duration_h: 24", "duration_h: 1.0e+11"), Stage3Config)
    assert error.message.startswith("duration_h: Input should be less than or equal to 87672")


def test_a_value_yaml_cannot_build_names_its_key_and_line(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "baselines" / "stage6-2024-06-07.yaml").read_text(encoding="utf-8")
    bad = text.replace("date: 2024-06-07", "date: 2024-13-45", 1)
    error = _refused(tmp_path, bad, BaselineConfig)
    assert error.message == "approval.date: cannot read '2024-13-45': month must be in 1..12"
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "date: 2024-13-45" in text)
    assert error.where == f"{tmp_path / 'config.yaml'}:{line}"


def test_control_characters_are_one_line_naming_the_line(tmp_path: Path) -> None:
    error = _refused(tmp_path, "market_intel:\n  x: \x00\x01\n")
    assert error.where == f"{tmp_path / 'config.yaml'}:2"
    assert error.message.startswith("not YAML text: unacceptable character #x0000")


def test_a_key_with_a_line_break_is_shown_quoted_on_one_line(tmp_path: Path) -> None:
    error = _refused(tmp_path, 'market_intel:\n  "two\\nlines": 1\n')
    assert error.message.startswith("market_intel.'two\\nlines': unknown key")


def test_an_alias_bomb_is_neither_a_run_profile_nor_a_strategy(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(10), encoding="utf-8")
    assert loader.is_stage3_file(bomb) is False
    with pytest.raises(ConfigError, match="more than 10,000 keys and values"):
        loader.load_config(bomb, StrategyConfig)


# --- every number of every config model is bounded -----------------------------------


def _config_models() -> list[type[ConfigModel]]:
    for module in pkgutil.iter_modules(stagectl.config.__path__):
        importlib.import_module(f"stagectl.config.{module.name}")
    found: list[type[ConfigModel]] = []
    pending = list(ConfigModel.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return sorted(found, key=lambda m: m.__qualname__)


def _constraints(metadata: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in metadata:
        flat.extend(_constraints(item.metadata) if isinstance(item, FieldInfo) else [item])
    return flat


def _numbers(annotation: Any, metadata: list[Any]) -> Iterator[tuple[Any, list[Any]]]:
    """Every int or float the annotation can hold, with the constraints on it."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        yield from _numbers(base, [*metadata, *extra])
    elif annotation in (int, float):
        yield annotation, _constraints(metadata)
    elif origin in (Union, types.UnionType):
        for member in get_args(annotation):
            yield from _numbers(member, metadata if member is not type(None) else [])
    elif origin is tuple:
        yield from _numbers(get_args(annotation)[0], [])
    elif origin is dict:
        yield from _numbers(get_args(annotation)[1], [])
    elif not (
        origin is Literal
        or annotation in (str, bool, type(None), dt.date)
        or (isinstance(annotation, type) and issubclass(annotation, BaseModel))
    ):
        raise AssertionError(f"teach this test the annotation {annotation!r}")


@pytest.mark.parametrize("model", _config_models(), ids=lambda m: m.__qualname__)
def test_every_number_a_config_holds_is_bounded_on_both_sides(model: type[ConfigModel]) -> None:
    assert model.model_config.get("allow_inf_nan") is False
    for name, field in model.model_fields.items():
        for kind, constraints in _numbers(field.annotation, list(field.metadata)):
            lower = [c for c in constraints if isinstance(c, Ge | Gt)]
            upper = [c for c in constraints if isinstance(c, Le | Lt)]
            assert lower and upper, f"{model.__qualname__}.{name}: {kind.__name__} is unbounded"


def test_a_config_hash_refuses_a_device_instead_of_reading_it_forever(tmp_path: Path) -> None:
    endless = tmp_path / "core.yaml"
    endless.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        loader.file_sha256(endless)
