"""Read a YAML config into its pydantic model; every problem becomes one ConfigError.

A problem is reported as ``where="config/core.yaml:12"`` (the path as given, and
the line of the offending key) and ``message="stress_lab.thresholds.spread_bps:
what is wrong"``. Lines come from the composed YAML node tree, so a validation
error points at the line of the key it is about; a missing key points at its
parent. Only ``yaml`` and ``pydantic`` are imported here: this module is on the
fast path of ``verify-thresholds``.

A hostile file costs nothing (``stagectl.config.limits``): at most 1 MiB is read, and
the composed node tree is walked with a budget of nodes (every alias counted at each
use), a nesting depth and a cap on integer literals *before* any Python object is
built, so an alias bomb ("billion laughs"), a recursive alias or a 5,000-digit integer
is one ``file:line: key.path: message`` error. A value the YAML constructor cannot
build (a date such as 2024-13-45) is reported the same way.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from stagectl.config.home import ConfigSource
from stagectl.config.limits import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_NODES,
    MAX_INT_DIGITS,
)
from stagectl.errors import ConfigError, first_line

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from stagectl.config.baseline import BaselineConfig
    from stagectl.config.core import CoreConfig
    from stagectl.config.data_governance import DataGovernanceConfig
    from stagectl.config.home import Home
    from stagectl.config.maker import MakerConfig
    from stagectl.config.risk_guard import NotifyConfig, RiskGuardConfig
    from stagectl.config.risk_presets import RiskPresetsConfig
    from stagectl.config.stage3 import Stage3Config
    from stagectl.config.strategy import StrategyConfig

M = TypeVar("M", bound=BaseModel)
KeyPath = tuple[str | int, ...]

CORE_FILE = "core.yaml"
BASELINE_FILE = "baselines/stage6-2024-06-07.yaml"
STRATEGY_FILE = "futures_alt_ensemble.yaml"
RISK_GUARD_FILE = "risk_guard_alt_ensemble.yaml"
STAGE3_FILE = "stage3.yaml"
STAGE3_STRATEGY_FILE = "stage3_strategy.yaml"
MAKER_FILE = "maker.yaml"
RISK_PRESETS_FILE = "risk_presets.yaml"
DATA_FILE = "data.yaml"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT_TAG = "tag:yaml.org,2002:int"


class _UnbuildableValue(Exception):
    """A scalar the YAML constructor refused (e.g. the date 2024-13-45)."""

    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


class _BoundedLoader(_Loader):  # type: ignore[valid-type,misc]
    """The safe loader whose constructor failures name their node instead of escaping
    as a bare ValueError."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:
            raise _UnbuildableValue(node, str(error).splitlines()[0]) from None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a regular file's bytes, hex, read in blocks; an unreadable file, a
    device or a pipe (``/dev/zero`` never ends) is a ConfigError."""
    try:
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError("not a regular file", where=str(path))
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise ConfigError(_os_reason(error), where=str(path)) from error


def load_config(source: ConfigSource | Path, model: type[M]) -> M:
    """Parse and validate one config file; raise ConfigError on any problem."""
    path = source.path if isinstance(source, ConfigSource) else source
    where = str(path)
    data, lines = _parse(read_config_text(path), where)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, lines, where) from None


def read_config_text(path: Path) -> str:
    """The file's text, read up to MAX_CONFIG_BYTES (a larger file, a device or an
    endless pipe is refused without reading it whole)."""
    where = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(_os_reason(error), where=where) from error
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the file is larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB "
            f"({_size_of(path)}); a config file is a few kilobytes",
            where=where,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", where=where) from None


def _size_of(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return f"{size:,} bytes" if size > MAX_CONFIG_BYTES else "read past the limit"


def parse_yaml_with_lines(text: str, where: str) -> tuple[Any, dict[KeyPath, int]]:
    """The YAML document and a map from key path to the 1-based line of its key."""
    return _parse(text, where)


def parse_yaml_document(text: str, where: str) -> Any:
    """Any YAML document (a list, a mapping; None when empty) under a config's limits:
    for YAML inputs that are not configs, such as a Stress Lab positions file."""
    return _build(text, where)[0]


def _parse(text: str, where: str) -> tuple[Any, dict[KeyPath, int]]:
    data, lines = _build(text, where)
    if data is None:
        raise ConfigError("the file is empty; expected a YAML mapping", where=f"{where}:1")
    if not isinstance(data, dict):
        raise ConfigError("expected a YAML mapping at the top level", where=f"{where}:1")
    return data, lines


def _build(text: str, where: str) -> tuple[Any, dict[KeyPath, int]]:
    """The document and its key lines; the limits are enforced on the node tree first."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        index = _Index(where)
        index.visit(node, (), frozenset())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, where) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, max(error.position, 0)) + 1
        character = error.character
        code = character if isinstance(character, int) else ord(character[:1] or b"\0")
        message = f"not YAML text: unacceptable character #x{code:04x} ({error.reason})"
        raise ConfigError(message, where=f"{where}:{line}") from None
    except yaml.YAMLError as error:
        first = first_line(error) if str(error).strip() else "invalid YAML"
        raise ConfigError(f"YAML error: {first}", where=where) from None
    except _UnbuildableValue as error:
        path = index.paths.get(id(error.node), ())
        line = error.node.start_mark.line + 1
        raise ConfigError(
            f"{_dotted(path) or '(top level)'}: cannot read {_shown(error.node.value)}: "
            f"{error.reason}",
            where=f"{where}:{line}",
        ) from None
    finally:
        loader.dispose()
    return data, index.lines


def _syntax_error(error: yaml.MarkedYAMLError, where: str) -> ConfigError:
    """PyYAML's problem and its line; the context (e.g. where a list opened) when known."""
    mark = error.problem_mark or error.context_mark
    line = f":{mark.line + 1}" if mark is not None else ""
    message = f"YAML syntax error: {error.problem or error.context or 'invalid YAML'}"
    context = error.context_mark
    if error.problem and error.context and context is not None and context is not mark:
        message += f" ({error.context} at line {context.line + 1})"
    return ConfigError(message, where=f"{where}{line}")


class _Index:
    """One walk of the composed node tree, before anything is constructed: the line of
    every key and list item, duplicate keys refused, and the limits enforced (an alias
    is walked again at each use, so the node budget bounds what construction and
    validation would expand)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.lines: dict[KeyPath, int] = {}
        self.paths: dict[int, KeyPath] = {}
        self.nodes = 0

    def visit(self, node: yaml.Node, path: KeyPath, open_nodes: frozenset[int]) -> None:
        """Walk ``node`` at ``path``; ``open_nodes`` are the collections it sits inside."""
        self._count(node, path)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return
        if id(node) in open_nodes:
            self._refuse(path, node, "an alias refers to a collection that contains it")
        if len(path) >= MAX_CONFIG_DEPTH:
            self._refuse(path, node, f"nested more than {MAX_CONFIG_DEPTH} levels deep")
        inside = open_nodes | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                self.visit(item, (*path, position), inside)
            return
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            self._count(key_node, (*path, key))
            if key in seen:
                self._refuse((*path, key), key_node, "duplicate key")
            seen.add(key)
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            self.visit(value_node, (*path, key), inside)

    def _count(self, node: yaml.Node, path: KeyPath) -> None:
        self.nodes += 1
        if self.nodes > MAX_CONFIG_NODES:
            self._refuse(
                path,
                node,
                f"the document holds more than {MAX_CONFIG_NODES:,} keys and values, "
                "counting each alias at every use (a config holds a few hundred)",
            )
        self.paths.setdefault(id(node), path)
        if node.tag == _INT_TAG and isinstance(node.value, str):
            digits = len(node.value.lstrip("+-").replace("_", ""))
            if digits > MAX_INT_DIGITS:
                self._refuse(path, node, f"integer of {digits} digits is out of range")

    def _refuse(self, path: KeyPath, node: yaml.Node, message: str) -> None:
        where = f"{self.where}:{node.start_mark.line + 1}"
        raise ConfigError(f"{_dotted(path) or '(top level)'}: {message}", where=where)


def _validation_error(error: ValidationError, lines: dict[KeyPath, int], where: str) -> ConfigError:
    """The first problem, an unknown key first: a misspelt key also makes one missing."""
    details = sorted(error.errors(include_url=False), key=lambda d: d["type"] != "extra_forbidden")
    first = details[0]
    path = _key_path(first)
    line = _line_for(path, lines)
    more = len(details) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    key = _dotted(path) or "(top level)"
    message = _describe(first)
    if first["type"] == "extra_forbidden" and path:
        message += _did_you_mean(path, details)
    return ConfigError(f"{key}: {message}{suffix}", where=f"{where}:{line}")


def _did_you_mean(path: KeyPath, details: list[ErrorDetails]) -> str:
    """Suggest a missing sibling key whose name is close to the unknown one."""
    import difflib  # only on an error: off the fast path

    missing = [
        str(p[-1])
        for p in (_key_path(d) for d in details if d["type"] == "missing")
        if p[:-1] == path[:-1]
    ]
    close = difflib.get_close_matches(str(path[-1]), missing, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _key_path(detail: ErrorDetails) -> KeyPath:
    """The error's location without pydantic's internal tags (e.g. union member names)."""
    return tuple(p for p in detail["loc"] if isinstance(p, int | str))


def _line_for(path: KeyPath, lines: dict[KeyPath, int]) -> int:
    """The line of the deepest existing prefix of ``path`` (a missing key: its parent)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


def _describe(detail: ErrorDetails) -> str:
    kind = detail["type"]
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    message = detail["msg"]
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    given = detail.get("input")
    if isinstance(given, dict | list | tuple):
        return message
    return f"{message} (got {_shown(given)})"


def _shown(value: object) -> str:
    """A value as a message shows it: its repr, cut to 60 characters."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _dotted(path: KeyPath) -> str:
    """``a.b[2].c``; a key that is not a plain printable word is shown quoted and cut."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if part.isprintable() and len(part) <= 60 else _shown(part)
        out += f".{key}" if out else key
    return out


def _os_reason(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "config file not found; pass an existing file with -c, or run 'stagectl init'"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a config file"
    if isinstance(error, PermissionError):
        return "config file is not readable (permission denied)"
    return f"cannot read config file: {error.strerror or error}"


def _load(home: Home, name: str, explicit: Path | None, model: type[M]) -> tuple[M, ConfigSource]:
    source = home.config_file(name, explicit)
    return load_config(source, model), source


def load_core(home: Home, explicit: Path | None = None) -> tuple[CoreConfig, ConfigSource]:
    """config/core.yaml (seed 000)."""
    from stagectl.config.core import CoreConfig

    return _load(home, CORE_FILE, explicit, CoreConfig)


def load_baseline(home: Home, explicit: Path | None = None) -> tuple[BaselineConfig, ConfigSource]:
    """config/baselines/stage6-2024-06-07.yaml, the approved Stage6 values (seed 000)."""
    from stagectl.config.baseline import BaselineConfig

    return _load(home, BASELINE_FILE, explicit, BaselineConfig)


def load_strategy(home: Home, explicit: Path | None = None) -> tuple[StrategyConfig, ConfigSource]:
    """config/futures_alt_ensemble.yaml (seed 003)."""
    from stagectl.config.strategy import StrategyConfig

    return _load(home, STRATEGY_FILE, explicit, StrategyConfig)


def load_risk_guard(
    home: Home, explicit: Path | None = None
) -> tuple[RiskGuardConfig, ConfigSource]:
    """config/risk_guard_alt_ensemble.yaml (seed 003)."""
    from stagectl.config.risk_guard import RiskGuardConfig

    return _load(home, RISK_GUARD_FILE, explicit, RiskGuardConfig)


def load_risk_guard_notify(home: Home, explicit: Path | None = None) -> NotifyConfig:
    """The ``notify`` section of the risk guard config alone: where to send an alert when
    the rest of the file is what is broken. ConfigError when the section itself is
    missing or invalid (no line numbers: the whole file's loader gives those)."""
    from stagectl.config.risk_guard import NotifyConfig

    source = home.config_file(RISK_GUARD_FILE, explicit)
    where = str(source.path)
    data, _ = _parse(read_config_text(source.path), where)
    try:
        return NotifyConfig.model_validate(data.get("notify"))
    except ValidationError:
        raise ConfigError("notify: missing or invalid", where=where) from None


def load_guard_strategy(
    home: Home, guard: RiskGuardConfig, source: ConfigSource
) -> tuple[StrategyConfig, ConfigSource]:
    """The strategy config a guard config names (``strategy_config``): the file beside
    the guard config when it is there, else the home's."""
    sibling = source.path.parent / guard.strategy_config
    return load_strategy(home, sibling if sibling.is_file() else None)


def load_stage3(home: Home, explicit: Path | None = None) -> tuple[Stage3Config, ConfigSource]:
    """config/stage3.yaml (seed 002)."""
    from stagectl.config.stage3 import Stage3Config

    return _load(home, STAGE3_FILE, explicit, Stage3Config)


def is_stage3_file(source: ConfigSource | Path) -> bool:
    """True when the file is a stage3 policy and run profile (top-level ``symbols``, no
    ``sleeves``), so ``run-live -c`` reads it as the profile; else it is a strategy file.
    An unreadable file is not a profile (its loader reports the problem)."""
    path = source.path if isinstance(source, ConfigSource) else source
    try:
        data, _ = _parse(read_config_text(path), str(path))
    except ConfigError:
        return False
    return "symbols" in data and "sleeves" not in data


def load_profile_strategy(
    home: Home, stage3: Stage3Config, stage3_source: ConfigSource
) -> tuple[StrategyConfig, ConfigSource]:
    """The strategy a stage3 profile names (``run.strategy``): the file beside the
    profile, else the home's ``config/``, else the packaged default. Every sleeve must
    be one of the profile's ``symbols``, so each position has its caps."""
    from stagectl.config.strategy import StrategyConfig

    if stage3.run is None:
        raise ConfigError(
            "run: missing; a run profile names its strategy "
            f"(run: {{strategy: {STAGE3_STRATEGY_FILE}, stop_limits: true}}, as the packaged "
            "stage3.yaml does)",
            where=str(stage3_source.path),
        )
    beside = stage3_source.path.parent / stage3.run.strategy
    source = (
        ConfigSource(beside, packaged=stage3_source.packaged)
        if beside.is_file()
        else home.config_file(stage3.run.strategy)
    )
    strategy = load_config(source, StrategyConfig)
    uncapped = [s.symbol for s in strategy.sleeves if s.symbol not in stage3.symbols]
    if uncapped:
        raise ConfigError(
            f"sleeves: {', '.join(uncapped)} not in the symbols of {stage3_source.path}, "
            "which cap every position of the run profile",
            where=str(source.path),
        )
    return strategy, source


def load_maker(home: Home, explicit: Path | None = None) -> tuple[MakerConfig, ConfigSource]:
    """config/maker.yaml (seed 004)."""
    from stagectl.config.maker import MakerConfig

    return _load(home, MAKER_FILE, explicit, MakerConfig)


def load_risk_presets(
    home: Home, explicit: Path | None = None
) -> tuple[RiskPresetsConfig, ConfigSource]:
    """config/risk_presets.yaml (seed 001)."""
    from stagectl.config.risk_presets import RiskPresetsConfig

    return _load(home, RISK_PRESETS_FILE, explicit, RiskPresetsConfig)


def load_data_governance(
    home: Home, explicit: Path | None = None
) -> tuple[DataGovernanceConfig, ConfigSource]:
    """config/data.yaml (seed 001, "Data Governance")."""
    from stagectl.config.data_governance import DataGovernanceConfig

    return _load(home, DATA_FILE, explicit, DataGovernanceConfig)
