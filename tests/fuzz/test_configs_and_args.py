"""Hostile configs and hostile argument values, judged by the fuzz harness.

(a) Mutations of the real packaged configs — values replaced by huge integers, floats,
infinities, NaN, strings, nested lists, keys deleted or added, anchors and aliases
(shared, recursive, a bomb), invalid YAML, binary garbage, non-UTF-8 bytes and oversized
files — run through the commands that read each file. Each command is chosen (or given
options) so that a config that still loads costs little: a four-day backtest, a six-hour
paper run, a Stress Lab whose data directory is missing.

(b) Generated values for every numeric option of the command tree (found by walking it,
so a new option is fuzzed without editing this file) and for every duration, date,
speed, price and choice option, each followed by arguments that fail fast once the value
is accepted (a missing config, an empty home), so no example trades or waits.

Every example must end in exit 0, 1 or 2, with no traceback, at most one error line, and
nothing written on exit 2 (``tests/fuzz/harness.py``).
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer._click.types import FloatParamType, IntParamType

from stagectl.cli.main import COMMANDS, _load
from tests.conftest import REPO_ROOT
from tests.fuzz.harness import assert_clean_outcome, invoke, scratch_home, snapshot
from tests.hostile_yaml import RECURSIVE_ALIAS, alias_bomb

PACKAGED = REPO_ROOT / "config"
FUZZED = "fuzzed.yaml"
MISSING = "missing.yaml"
ONE_MIB = 1024 * 1024
FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

KeyPath = tuple[str | int, ...]
LOCAL = (MISSING, "missing.csv", "no-data")
"""Arguments that name a file or directory in the scratch home (none of them exists)."""


# --- (a) configs -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigTarget:
    """A packaged config and the command that reads it (``{file}``: the mutated file)."""

    name: str
    packaged: str
    args: tuple[str, ...]
    examples: int
    place: str = FUZZED
    beside: tuple[str, ...] = ()
    initialised: bool = False
    """Run in a home made by ``stagectl init`` (the command needs its state database)."""


CONFIG_TARGETS = [
    ConfigTarget("core", "core.yaml", ("verify-thresholds", "-c", "{file}"), 30),
    ConfigTarget(
        "governor",
        "core.yaml",
        ("governor", "-c", "{file}", "--data", "no-data"),
        10,
        initialised=True,
    ),
    ConfigTarget(
        "baseline",
        "baselines/stage6-2024-06-07.yaml",
        ("verify-thresholds", "--baseline", "{file}"),
        20,
    ),
    ConfigTarget("risk-guard", "risk_guard_alt_ensemble.yaml", ("risk-guard", "-c", "{file}"), 20),
    ConfigTarget("paper-gate", "risk_guard_alt_ensemble.yaml", ("paper-gate", "-c", "{file}"), 10),
    ConfigTarget(
        "stage3", "stage3.yaml", ("preflight", "-c", "{file}"), 20, beside=("stage3_strategy.yaml",)
    ),
    ConfigTarget(
        "maker", "maker.yaml", ("regime-analyze", "-c", "{file}", "--candles", "missing.csv"), 20
    ),
    ConfigTarget(
        "stress-scenarios",
        "stress_scenarios.yaml",
        ("stress-lab", "--scenarios", "{file}", "--data", "no-data"),
        20,
    ),
    ConfigTarget(
        "strategy",
        "futures_alt_ensemble.yaml",
        ("backtest", "-c", "{file}", "--start", "2026-05-12"),
        20,
    ),
    ConfigTarget(
        "risk-presets",
        "risk_presets.yaml",
        ("backtest", "--cost-model", "full", "--start", "2026-05-12"),
        10,
        place="config/risk_presets.yaml",
    ),
    ConfigTarget(
        "run-live-strategy",
        "futures_alt_ensemble.yaml",
        ("run-live", "-c", "{file}", "--speed", "max", "--duration", "6h"),
        5,
    ),
    ConfigTarget(
        "run-live-profile",
        "stage3.yaml",
        ("run-live", "-c", "{file}", "--speed", "max", "--duration", "6h"),
        5,
        beside=("stage3_strategy.yaml",),
    ),
]

RAW_VALUES = (
    "9" * 5000,
    "-" + "9" * 40,
    "1000000000000000000000",
    "1.0e+15",
    ".inf",
    "-.inf",
    ".nan",
    "1.0e+308",
    "-1.0e+308",
    "1.0e+999",
    "1.0e-320",
    "0x" + "f" * 40,
    "0b" + "1" * 300,
    "190:20:30",
    "2024-13-45",
    "2024-02-30 25:61:00",
    "!!binary AAAA",
    "!!python/object/apply:os.system ['true']",
    "!!int '12'",
    "!!float 'nan'",
    "*nowhere",
    "&loop [*loop]",
    "&self {again: *self}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{}",
    "[]",
    "~",
    "''",
    '"\\u202e\\x00\\x1b[31m"',
    "{? [a, b] : c}",
    "<<: {x: 1}",
)
"""YAML spellings that the emitter would never write: placed verbatim as a value."""

SYNTAX_NOISE = ":[]{}&*!|>%@`\t\"'#-,?\x00\x85\u2028\ufeff"


@dataclass
class Document:
    """A mutable config document and the verbatim YAML spliced in for placeholders."""

    data: Any
    raw: dict[str, str] = field(default_factory=dict)
    prefix: str = ""

    def placeholder(self, text: str) -> str:
        token = f"__raw_{len(self.raw)}__"
        self.raw[token] = text
        return token

    def render(self) -> str:
        text = yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, width=10**6)
        for token, value in self.raw.items():
            text = text.replace(token, value)
        return self.prefix + text


def _paths(data: Any, path: KeyPath = ()) -> Iterator[KeyPath]:
    """Every key path of the document, inner nodes included (the root is ``()``)."""
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*path, index))


def _get(data: Any, path: KeyPath) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: KeyPath, value: Any) -> Any:
    if not path:
        return value
    _get(data, path[:-1])[path[-1]] = value
    return data


def _delete(data: Any, path: KeyPath) -> None:
    if path:
        del _get(data, path[:-1])[path[-1]]


NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-3, max_value=200_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e13, max_value=1e13),
    st.sampled_from([0, -1, 1, 0.0, -0.0, 1e-300, 5e-324, 1e12, 1e12 + 1, 100_001]),
)
VALUES = st.one_of(
    NUMBERS,
    st.text(max_size=40),
    st.booleans(),
    st.none(),
    st.recursive(st.integers() | st.text(max_size=5), lambda kids: st.lists(kids, max_size=3)),
    st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=5), max_size=3),
)


@st.composite
def mutated_config(draw: st.DrawFn, original: str) -> bytes:
    """One hostile version of a packaged config file, as bytes."""
    kind = draw(
        st.sampled_from(
            [
                "value",
                "value",
                "value",
                "raw",
                "raw",
                "delete",
                "unknown-key",
                "shared-alias",
                "alias-bomb",
                "recursive-alias",
                "duplicate-key",
                "syntax",
                "binary",
                "not-utf8",
                "oversize",
            ]
        )
    )
    base = original.encode("utf-8")
    if kind == "syntax":
        if draw(st.booleans()):
            return base[: draw(st.integers(0, len(base)))]
        at = draw(st.integers(0, len(original)))
        noise = draw(st.text(alphabet=SYNTAX_NOISE, min_size=1, max_size=4))
        return (original[:at] + noise + original[at:]).encode("utf-8")
    if kind == "binary":
        garbage = draw(st.binary(min_size=1, max_size=300))
        return draw(st.sampled_from([garbage, garbage + base, base + garbage]))
    if kind == "not-utf8":
        at = draw(st.integers(0, len(base)))
        return (
            base[:at]
            + draw(st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"]))
            + base[at:]
        )
    if kind == "oversize":
        return base + b"\n#" + b"x" * ONE_MIB + b"\n"
    if kind == "duplicate-key":
        lines = original.splitlines(keepends=True)
        keyed = [
            i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")
        ]
        at = draw(st.sampled_from(keyed))
        return "".join([*lines[: at + 1], lines[at], *lines[at + 1 :]]).encode("utf-8")

    document = Document(copy.deepcopy(yaml.safe_load(original)))
    paths = list(_paths(document.data))
    target = draw(st.sampled_from(paths))
    if kind == "value":
        document.data = _set(document.data, target, draw(VALUES))
    elif kind == "raw":
        document.data = _set(
            document.data, target, document.placeholder(draw(st.sampled_from(RAW_VALUES)))
        )
    elif kind == "delete":
        _delete(document.data, target)
    elif kind == "unknown-key":
        parent = _get(document.data, target)
        if isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(VALUES)
        else:
            document.data = _set(document.data, target, {"unexpected": 1})
    elif kind == "shared-alias":
        other = draw(st.sampled_from(paths))
        shared = _get(document.data, other)
        if isinstance(shared, dict | list) and target[: len(other)] != other:
            document.data = _set(document.data, target, shared)  # the emitter writes &id/*id
    elif kind == "alias-bomb":
        levels = draw(st.integers(2, 12))
        bomb = alias_bomb(levels, key="bomb_anchors")
        document.prefix = bomb.rsplit("bomb_anchors:", 1)[0]
        document.data = _set(document.data, target, document.placeholder(f"*a{levels - 1}"))
    elif kind == "recursive-alias":
        if target:
            document.data = _set(document.data, target, document.placeholder("&loop [1, *loop]"))
        else:
            return RECURSIVE_ALIAS.encode("utf-8")
    return document.render().encode("utf-8", errors="surrogatepass")


def _home_with_config(home: Path, target: ConfigTarget, content: bytes) -> list[str]:
    """Write the mutated file (and its packaged neighbours); the command's arguments."""
    place = home / target.place
    place.parent.mkdir(parents=True, exist_ok=True)
    place.write_bytes(content)
    for name in target.beside:
        shutil.copy(PACKAGED / name, place.parent / name)
    return [str(place) if arg == "{file}" else _local(home, arg) for arg in target.args]


def _local(home: Path, arg: str) -> str:
    return str(home / arg) if arg in LOCAL else arg


def _config_test(target: ConfigTarget, template: Path) -> Callable[[], None]:
    original = (PACKAGED / target.packaged).read_text(encoding="utf-8")

    @settings(max_examples=target.examples, **FUZZ_SETTINGS)
    @given(content=mutated_config(original))
    def check(content: bytes) -> None:
        with scratch_home() as home:
            if target.initialised:
                shutil.copytree(template, home, dirs_exist_ok=True)
            args = _home_with_config(home, target, content)
            before = snapshot(home)
            assert_clean_outcome(invoke(home, args), home, before)

    return check


@pytest.fixture(scope="module")
def initialised_home() -> Iterator[Path]:
    """A home made once by ``stagectl init``, copied into an example that needs one."""
    with scratch_home() as home:
        assert invoke(home, ["init", str(home)]).exit_code == 0
        yield home


@pytest.mark.parametrize("target", CONFIG_TARGETS, ids=lambda t: t.name)
def test_a_mutated_config_is_judged_never_crashed(
    target: ConfigTarget, initialised_home: Path
) -> None:
    _config_test(target, initialised_home)()


# --- (b) argument values ---------------------------------------------------------------


@dataclass(frozen=True)
class ArgTarget:
    """``stagectl COMMAND... OPTION VALUE TAIL...``; a None option: VALUE is positional."""

    command: tuple[str, ...]
    option: str | None
    kind: str
    tail: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return " ".join([*self.command, self.option or "ARG"])


CHEAP_TAIL: dict[str, tuple[str, ...]] = {
    "audit-strategy": ("-c", MISSING),
    "backtest": ("-c", MISSING),
    "consensus": ("--votes", "missing.csv"),
    "cpcv": ("-c", MISSING),
    "walk-forward": ("-c", MISSING),
    "data check": ("--data", "no-data"),
    "metrics window": (),
    "metrics export-windows": (),
    "paper-gate": (),
    "regime-analyze": ("--candles", "missing.csv"),
    "risk-guard": ("--replay", "-c", MISSING),
    "route": (
        "--symbol",
        "BTCUSDT",
        "--side",
        "buy",
        "--notional",
        "1000",
        "--book",
        "missing.csv",
    ),
    "run-live": ("-c", MISSING),
    "shadow compare": ("--baseline", "a", "--candidate", "b"),
    "shadow record-backtest": ("--run-id", "fuzz", "-c", MISSING),
    "stress-lab": ("--data", "no-data"),
    "trading incidents": (),
    "trading confirm": ("--by", "fuzz"),
    "trading cancel": ("--by", "fuzz", "--reason", "fuzz"),
    "trading revoke": ("--by", "fuzz", "--reason", "fuzz"),
}
"""After the fuzzed value: what makes the command stop right after accepting it (a
missing config or data file; an empty home has no state database)."""


def _numeric_targets() -> list[ArgTarget]:
    """Every int and float parameter of the command tree."""
    found = []
    for name in sorted(COMMANDS):
        stack = [((name,), _load(name))]
        while stack:
            path, command = stack.pop()
            for sub, child in sorted(getattr(command, "commands", {}).items()):
                stack.append(((*path, sub), child))
            for param in command.params:
                if isinstance(param.type, FloatParamType | IntParamType):
                    kind = "float" if isinstance(param.type, FloatParamType) else "int"
                    option = param.opts[0] if param.opts[0].startswith("-") else None
                    found.append(ArgTarget(path, option, kind, CHEAP_TAIL[" ".join(path)]))
    return found


STRING_TARGETS = [
    ArgTarget(("run-live",), "--duration", "duration", ("-c", MISSING)),
    ArgTarget(("walk-forward",), "--train", "duration", ("-c", MISSING)),
    ArgTarget(("walk-forward",), "--test", "duration", ("-c", MISSING)),
    ArgTarget(("walk-forward",), "--purge", "duration", ("-c", MISSING)),
    ArgTarget(("walk-forward",), "--embargo", "duration", ("-c", MISSING)),
    ArgTarget(("cpcv",), "--purge", "duration", ("-c", MISSING)),
    ArgTarget(("cpcv",), "--embargo", "duration", ("-c", MISSING)),
    ArgTarget(("run-live",), "--speed", "speed", ("-c", MISSING)),
    ArgTarget(("backtest",), "--start", "date", ("-c", MISSING)),
    ArgTarget(("backtest",), "--end", "date", ("-c", MISSING)),
    ArgTarget(("run-live",), "--start", "date", ("-c", MISSING)),
    ArgTarget(("run-live",), "--end", "date", ("-c", MISSING)),
    ArgTarget(("shadow", "record-backtest"), "--start", "date", ("--run-id", "x", "-c", MISSING)),
    ArgTarget(("metrics", "export-windows"), "--start", "date"),
    ArgTarget(("metrics", "export-windows"), "--end", "date"),
    ArgTarget(("metrics", "window"), "--until", "date", ("--hours", "1")),
    ArgTarget(("metrics", "fetch"), "--since", "date", ("--symbol", "BTCUSDT", "--exchange", "x")),
    ArgTarget(
        ("data", "fetch"), "--since", "date", ("--symbol", "BTCUSDT", "--exchange", "nosuch")
    ),
    ArgTarget(("trading", "incidents"), "--since", "date"),
    ArgTarget(("risk-guard",), "--now", "date", ("-c", MISSING)),
    ArgTarget(("risk-guard",), "--replay-start", "date", ("--replay", "-c", MISSING)),
    ArgTarget(("risk-guard",), "--replay-end", "date", ("--replay", "-c", MISSING)),
    ArgTarget(("governor",), "--now", "date", ("-c", MISSING)),
    ArgTarget(("market-intel",), "--now", "date", ("-c", MISSING)),
    ArgTarget(("paper-gate",), "--now", "date"),
    ArgTarget(("stress-lab",), "--now", "date", ("--data", "no-data")),
    ArgTarget(("metrics", "window"), "--mark", "mark", ("--hours", "1")),
    ArgTarget(("backtest",), "--cost-model", "choice", ("-c", MISSING)),
    ArgTarget(("backtest",), "--preset", "choice", ("-c", MISSING)),
    ArgTarget(("risk-guard",), "--eval", "choice", ("--replay", "-c", MISSING)),
    ArgTarget(("consensus",), "--regime", "choice", ("--votes", "missing.csv")),
    ArgTarget(("completion", "show"), None, "choice"),
]

NASTY = [
    "nan",
    "NaN",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "Infinity",
    "1e308",
    "-1e308",
    "1e309",
    "1e-400",
    "0",
    "-0",
    "-1",
    "0x10",
    "1_000",
    "",
    " ",
    "\x00",
    "١٢",
    "٣x",
    "½",
    "9" * 5000,
    "1e999999999",
    "2**63",
    str(2**63),
    str(-(2**63) - 1),
    "--json",
]
TEXT = st.text(max_size=30)
VALUE_STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "float": st.one_of(
        st.sampled_from(NASTY),
        st.floats().map(repr),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.17g}"),
        st.integers().map(str),
        TEXT,
    ),
    "int": st.one_of(st.sampled_from(NASTY), st.integers().map(str), st.floats().map(repr), TEXT),
    "duration": st.one_of(
        st.sampled_from(NASTY),
        st.sampled_from(["3653d", "3654d", "522w", "1s", "0s", "0.0000001s", "1.5.5d", "1d2h"]),
        st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{1,10})?\s?[smhdwyMSHDW]?\Z"),
        TEXT,
    ),
    "speed": st.one_of(
        st.sampled_from(["max", "MAX", "nanx", "infx", "-infx", "1e308x", "0x", "0.5x", "x"]),
        st.floats().map(lambda f: f"{f!r}x"),
        st.from_regex(r"\A[0-9]{1,12}(\.[0-9]{1,6})?x?\Z"),
        TEXT,
    ),
    "date": st.one_of(
        st.sampled_from(
            [
                "0001-01-01",
                "9999-12-31",
                "9999-12-31T23:59:59-23:59",
                "0001-01-01T00:00+01:00",
                "2008-12-31",
                "2009-01-01",
                "1970-01-01T00:00Z",
                "2026-02-30",
                "2026-05-16T25:00",
                "+10000-01-01",
                "2026-05-16T12:00:00.000000000001Z",
                "2026-W20-1",
                "20260516",
            ]
        ),
        st.datetimes().map(lambda d: d.isoformat()),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.sampled_from(NASTY),
        TEXT,
    ),
    "mark": st.one_of(
        st.sampled_from(NASTY).map(lambda v: f"BTCUSDT={v}"),
        st.floats().map(lambda f: f"BTCUSDT={f!r}"),
        st.sampled_from(["BTCUSDT", "=5", "BTCUSDT==5", "BTCUSDT=1e400", "BTCUSDT=-0"]),
        TEXT,
    ),
    "choice": st.one_of(
        st.sampled_from(["flat", "full", "hourly", "daily", "TREND", "bash", "zsh", "fish"]),
        st.sampled_from(NASTY),
        TEXT,
    ),
}

ARG_TARGETS = _numeric_targets() + STRING_TARGETS


def _argv(home: Path, target: ArgTarget, value: str) -> list[str]:
    """The option and its value first (click converts parameters in the order given);
    a positional value after ``--``, so ``-9`` is not read as an option."""
    tail = [_local(home, arg) for arg in target.tail]
    if target.option is None:
        return [*target.command, *tail, "--", value]
    return [*target.command, target.option, value, *tail]


@pytest.mark.parametrize("target", ARG_TARGETS, ids=lambda t: t.id)
@settings(max_examples=5, **FUZZ_SETTINGS)
@given(data=st.data())
def test_a_hostile_argument_value_is_judged_never_crashed(
    target: ArgTarget, data: st.DataObject
) -> None:
    value = data.draw(VALUE_STRATEGIES[target.kind], label="value")
    with scratch_home() as home:
        before = snapshot(home)
        result = invoke(home, _argv(home, target, value))
        assert_clean_outcome(result, home, before)


def test_every_numeric_option_is_fuzzed() -> None:
    """The numeric targets come from the command tree: the known ones are among them."""
    ids = {t.id for t in _numeric_targets()}
    assert {
        "metrics window --hours",
        "metrics window --seconds",
        "backtest --cost-multiplier",
    } <= ids
    assert {"cpcv --folds", "trading confirm ARG", "stress-lab --equity"} <= ids
