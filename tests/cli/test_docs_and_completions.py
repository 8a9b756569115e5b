"""Docs and completion scripts cannot go stale: every command is documented, has an
example in --help, and the committed completion scripts match the command tree.

The completion scripts are exercised in the real shells (bash always; zsh and
fish when installed).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT, Run

COMPLETIONS = REPO_ROOT / "completions"
CLI_DOCS = REPO_ROOT / "docs" / "cli.md"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_completions", REPO_ROOT / "scripts" / "gen_completions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
TREE = GEN.command_tree()
NODES = [node for node in TREE.walk() if node.path]
LOADED = {node.key for node in NODES if node.loaded}


def _needs(key: str) -> None:
    """Skip when a command another engineer is building is not importable yet."""
    if key.split()[0] not in LOADED:
        pytest.skip(f"'stagectl {key}' is not registered or its module is not written yet")


# --- staleness and docs -------------------------------------------------------------------


def test_committed_completion_scripts_match_the_command_tree() -> None:
    stale = GEN.stale_files(COMPLETIONS, GEN.render_all(TREE))
    assert stale == [], (
        f"completion scripts are stale: {', '.join(stale)}; "
        "run `python scripts/gen_completions.py` and commit completions/"
    )


def test_zsh_script_is_committed_under_both_names() -> None:
    assert (COMPLETIONS / "_stagectl").read_text() == (COMPLETIONS / "stagectl.zsh").read_text()


def test_completion_scripts_start_no_python() -> None:
    for name in ("stagectl.bash", "_stagectl", "stagectl.fish"):
        lines = (COMPLETIONS / name).read_text().splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        assert "python" not in code.lower()
        assert "_STAGECTL_COMPLETE" not in code


def _documented_paths() -> set[str]:
    """Command paths named by the `## stagectl ...` headings of docs/cli.md, read now."""
    paths = set()
    for line in CLI_DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## stagectl "):
            words = []
            for word in line.removeprefix("## stagectl ").split():
                if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", word):
                    break
                words.append(word)
            paths.add(" ".join(words))
    return paths


@pytest.mark.parametrize("key", [node.key for node in NODES])
def test_every_command_has_a_section_in_cli_docs(key: str) -> None:
    documented = _documented_paths()
    node = next(n for n in NODES if n.key == key)
    covered = key in documented or (
        bool(node.subcommands) and any(path.startswith(key + " ") for path in documented)
    )
    assert covered, f"docs/cli.md has no '## stagectl {key}' section"


@pytest.mark.parametrize("key", [node.key for node in NODES])
def test_every_command_help_shows_an_example(run: Run, key: str) -> None:
    _needs(key)
    result = run([*key.split(), "--help"])
    assert result.exit_code == 0, result.stderr
    assert "Example:" in result.stdout


@pytest.mark.parametrize("key", [node.key for node in NODES])
def test_every_command_help_is_plain_text_when_piped(run: Run, key: str) -> None:
    """No rich boxes in piped help, a group's usage (no subcommand given) included."""
    _needs(key)
    node = next(n for n in NODES if n.key == key)
    for args in ([*key.split(), "--help"], *([key.split()] if node.subcommands else [])):
        result = run(args)
        assert not set("╭╮╰╯│─") & set(result.stdout + result.stderr), " ".join(args)


def test_root_help_shows_an_example(run: Run) -> None:
    result = run(["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.stdout


# --- stagectl completion show / install ---------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "script"),
    [("bash", "stagectl.bash"), ("zsh", "_stagectl"), ("fish", "stagectl.fish")],
)
def test_completion_show_prints_the_committed_script(run: Run, shell: str, script: str) -> None:
    result = run(["completion", "show", shell])
    assert result.exit_code == 0
    assert result.stdout == (COMPLETIONS / script).read_text(encoding="utf-8")


def test_completion_show_unknown_shell_is_a_usage_error(run: Run) -> None:
    result = run(["completion", "show", "tcsh"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "tcsh" in result.stderr


def test_completion_install_writes_the_script_and_is_idempotent(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "completions" / "stagectl"
    first = run(["completion", "install", "bash", "--path", str(target)])
    assert first.exit_code == 0
    assert f"wrote {target}" in first.stdout
    assert target.read_text() == (COMPLETIONS / "stagectl.bash").read_text()
    second = run(["completion", "install", "bash", "--path", str(target)])
    assert second.exit_code == 0
    assert "already up to date" in second.stdout
    assert target.read_text() == (COMPLETIONS / "stagectl.bash").read_text()


@pytest.mark.parametrize(
    ("shell", "location", "script"),
    [
        ("bash", ".local/share/bash-completion/completions/stagectl", "stagectl.bash"),
        ("zsh", ".zfunc/_stagectl", "_stagectl"),
        ("fish", ".config/fish/completions/stagectl.fish", "stagectl.fish"),
    ],
)
def test_completion_install_uses_the_shell_standard_user_location(
    run: Run, tmp_path: Path, shell: str, location: str, script: str
) -> None:
    user_home = tmp_path / "user"
    result = run(["completion", "install", shell], env={"HOME": str(user_home)})
    assert result.exit_code == 0
    assert (user_home / location).read_text() == (COMPLETIONS / script).read_text()


def test_completion_install_zsh_says_which_fpath_line_to_add(run: Run, tmp_path: Path) -> None:
    result = run(["completion", "install", "zsh"], env={"HOME": str(tmp_path)})
    assert result.exit_code == 0
    assert "fpath=(~/.zfunc $fpath)" in result.stdout


def test_completion_install_dry_run_writes_nothing(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "stagectl.fish"
    result = run(["completion", "install", "fish", "--dry-run", "--path", str(target)])
    assert result.exit_code == 0
    assert f"would write {target}" in result.stdout
    assert not target.exists()


def test_completion_install_into_an_unwritable_place_is_an_input_error(
    run: Run, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run(["completion", "install", "bash", "--path", str(blocker / "stagectl")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {blocker / 'stagectl'}: cannot write")


# --- the scripts in real shells -----------------------------------------------------------


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A directory with YAML files, other files and a subdirectory to complete from."""
    directory = tmp_path / "work"
    (directory / "baselines").mkdir(parents=True)
    for name in ("core.yaml", "risk.yml", "notes.txt"):
        (directory / name).write_text("x")
    return directory


def bash_complete(words: list[str], cwd: Path) -> list[str]:
    """COMPREPLY of the bash script for ``words`` (the last is the word being completed).

    PATH points to an empty directory, so the script can run no program at all.
    """
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    quoted = " ".join("'" + word.replace("'", "'\\''") + "'" for word in words)
    program = (
        f"source '{COMPLETIONS / 'stagectl.bash'}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMPREPLY=()\n"
        "_stagectl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    empty_path = cwd.parent / "no-programs"
    empty_path.mkdir(exist_ok=True)
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", program],
        cwd=cwd,
        env={"PATH": str(empty_path), "HOME": str(cwd)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""
    return sorted(line for line in result.stdout.splitlines() if line)


def test_bash_completes_a_command_prefix(config_dir: Path) -> None:
    _needs("verify-thresholds")
    assert bash_complete(["stagectl", "verify-t"], config_dir) == ["verify-thresholds"]


def test_bash_completes_every_top_level_command(config_dir: Path) -> None:
    from stagectl.cli.main import COMMANDS

    assert bash_complete(["stagectl", ""], config_dir) == sorted(COMMANDS)


def test_bash_completes_config_option_to_yaml_files_and_directories(config_dir: Path) -> None:
    _needs("verify-thresholds")
    words = ["stagectl", "verify-thresholds", "-c", ""]
    assert bash_complete(words, config_dir) == ["baselines", "core.yaml", "risk.yml"]


def test_bash_completes_config_option_written_with_equals(config_dir: Path) -> None:
    _needs("verify-thresholds")
    words = ["stagectl", "verify-thresholds", "--config=c"]
    assert bash_complete(words, config_dir) == ["--config=core.yaml"]


def test_bash_completes_subcommands_of_a_group(config_dir: Path) -> None:
    _needs("state")
    assert "info" in bash_complete(["stagectl", "state", ""], config_dir)


def test_bash_completes_argument_choices(config_dir: Path) -> None:
    words = ["stagectl", "completion", "show", ""]
    assert bash_complete(words, config_dir) == ["bash", "fish", "zsh"]


def test_bash_completes_options_after_a_global_option_value(config_dir: Path) -> None:
    words = ["stagectl", "--home", "baselines", "completion", "install", "--"]
    assert bash_complete(words, config_dir) == ["--dry-run", "--help", "--path"]


def test_bash_completes_directory_options_to_directories_only(config_dir: Path) -> None:
    assert bash_complete(["stagectl", "--home", ""], config_dir) == ["baselines"]


FIXED_VALUES = [
    (["backtest", "--preset"], ["aggressive", "balanced", "conservative"]),
    (["risk-guard", "--preset"], ["aggressive", "balanced", "conservative"]),
    (["risk-guard", "--eval"], ["daily", "hourly"]),
    (["metrics", "import", "--format"], ["ccxt-json", "csv"]),
    (["run-live", "--speed"], ["1x", "3600x", "60x", "86400x", "max"]),
    (["backtest", "--symbol"], ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]),
    (["data", "check", "-s"], ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]),
]


@pytest.mark.parametrize(("words", "values"), FIXED_VALUES)
def test_bash_completes_the_fixed_values_of_an_option(
    config_dir: Path, words: list[str], values: list[str]
) -> None:
    _needs(words[0])
    assert bash_complete(["stagectl", *words, ""], config_dir) == values


def test_bash_completes_scenario_names_from_the_packaged_configs(config_dir: Path) -> None:
    _needs("stress-lab")
    words = ["stagectl", "stress-lab", "--scenario", "hist_sol"]
    assert bash_complete(words, config_dir) == [
        "hist_solusdt_24h_down",
        "hist_solusdt_24h_up",
        "hist_solusdt_7d_down",
        "hist_solusdt_7d_up",
    ]
    assert "combined" in bash_complete([*words[:-1], ""], config_dir)


def test_bash_completes_a_prefix_of_a_fixed_value(config_dir: Path) -> None:
    _needs("risk-guard")
    assert bash_complete(["stagectl", "risk-guard", "--preset", "b"], config_dir) == ["balanced"]


@pytest.mark.parametrize(
    "words",
    [
        ["backtest", "--data"],
        ["backtest", "--export"],
        ["walk-forward", "--export"],
        ["regime-analyze", "--export"],
        ["data", "check", "--data"],
        ["risk-guard", "--export"],
    ],
)
def test_bash_completes_directory_options_to_directories(
    config_dir: Path, words: list[str]
) -> None:
    _needs(words[0])
    assert bash_complete(["stagectl", *words, ""], config_dir) == ["baselines"]


def test_fixed_values_come_from_the_packaged_configs_and_bundled_data() -> None:
    from stagectl.cli import _values

    assert _values.preset_names() == ["conservative", "balanced", "aggressive"]
    assert _values.bundled_symbols() == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    assert "hist_xrpusdt_7d_up" in _values.scenario_names()


def test_zsh_script_offers_the_right_candidates(config_dir: Path) -> None:
    """zsh's completion widgets need a terminal, so compadd/_describe/_files are stubbed
    to print what the script offers; the command-tree walk runs in real zsh."""
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed")
    program = f"""
compdef() {{ : }}
compset() {{ : }}
_describe() {{ print -r -- "describe ${{(P)4}}" }}
_files() {{ print -r -- "files $*" }}
compadd() {{ print -r -- "compadd ${{(P)2}}" }}
source '{COMPLETIONS / "_stagectl"}'
t() {{ words=("$@"); CURRENT=$#words; _stagectl }}
t stagectl completion show ''
t stagectl --home ''
t stagectl completion install --
t stagectl ''
t stagectl risk-guard --eval ''
t stagectl backtest --export ''
"""
    result = subprocess.run(
        [zsh, "-f", "-c", program], cwd=config_dir, capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "compadd bash zsh fish"
    assert lines[1] == "files -/"
    assert lines[2].startswith("describe --dry-run:")
    assert "completion:Show or install shell completion scripts." in lines[3]
    assert lines[4] == "compadd hourly daily"
    assert lines[5] == "files -/"


def test_fish_script_completes_in_real_fish(config_dir: Path) -> None:
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish is not installed")

    def complete(line: str) -> list[str]:
        program = f"source '{COMPLETIONS / 'stagectl.fish'}'; complete -C '{line}'"
        result = subprocess.run(
            [fish, "--no-config", "-c", program],
            cwd=config_dir,
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted(entry.split("\t")[0] for entry in result.stdout.splitlines())

    assert complete("stagectl completion show ") == ["bash", "fish", "zsh"]
    assert complete("stagectl --home ") == ["baselines/"]
    if "risk-guard" in LOADED:
        assert complete("stagectl risk-guard --preset ") == [
            "aggressive",
            "balanced",
            "conservative",
        ]
        assert complete("stagectl risk-guard --export ") == ["baselines/"]
    if "verify-thresholds" in LOADED:
        assert complete("stagectl verify-t") == ["verify-thresholds"]
        assert complete("stagectl verify-thresholds -c ") == ["baselines/", "core.yaml", "risk.yml"]
