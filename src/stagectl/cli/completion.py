"""``stagectl completion show|install``: the static shell completion scripts.

The scripts are generated from the command tree by scripts/gen_completions.py
and shipped inside the wheel (``stagectl/completions``); pressing TAB runs no
Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import DryRunOpt, info
from stagectl.errors import InputError

app = typer.Typer(
    help="Show or install shell completion scripts (bash, zsh, fish).\n\n"
    "Example: stagectl completion install bash",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@dataclass(frozen=True)
class ShellTarget:
    """Where a shell looks for stagectl's completion and what the rc file needs."""

    script: str
    user_path: str
    rc_hint: str


TARGETS: dict[Shell, ShellTarget] = {
    Shell.bash: ShellTarget(
        "stagectl.bash",
        "~/.local/share/bash-completion/completions/stagectl",
        "bash-completion loads it on demand; without bash-completion, add to ~/.bashrc:\n"
        "  source {path}",
    ),
    Shell.zsh: ShellTarget(
        "_stagectl",
        "~/.zfunc/_stagectl",
        "add to ~/.zshrc, before compinit:\n"
        "  fpath=(~/.zfunc $fpath)\n"
        "  autoload -Uz compinit && compinit",
    ),
    Shell.fish: ShellTarget(
        "stagectl.fish",
        "~/.config/fish/completions/stagectl.fish",
        "fish loads it automatically; nothing to add to config.fish",
    ),
}

ShellArg = Annotated[Shell, typer.Argument(help="The shell: bash, zsh or fish.", metavar="SHELL")]


def completions_dir() -> Path:
    """The packaged scripts: ``stagectl/completions`` in a wheel, else the checkout's."""
    packaged = Path(str(resources.files("stagectl"))) / "completions"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "completions"


def completion_script(shell: Shell) -> str:
    path = completions_dir() / TARGETS[shell].script
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(
            f"the {shell.value} completion script is missing ({error.strerror}); "
            "reinstall stagectl",
            where=str(path),
        ) from error


@app.callback()
def completion() -> None:
    """Show or install shell completion scripts (bash, zsh, fish).

    Example: stagectl completion install bash
    """


@app.command("show")
def show(shell: ShellArg) -> None:
    """Print the completion script for SHELL on stdout.

    Example: stagectl completion show zsh > ~/.zfunc/_stagectl
    """
    typer.echo(completion_script(shell), nl=False)


@app.command("install")
def install(
    shell: ShellArg,
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            help="Write the script to FILE instead of the shell's standard user location.",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Install the completion script for SHELL where the shell finds it.

    Writes to the shell's standard user location (or --path), says where, and
    what to add to the shell's rc file. Running it again rewrites the same file.

    Example: stagectl completion install bash --dry-run
    """
    target = TARGETS[shell]
    destination = (path or Path(target.user_path)).expanduser()
    script = completion_script(shell)
    hint = target.rc_hint.format(path=destination)
    if dry_run:
        typer.echo(f"would write {destination}")
        typer.echo(hint)
        return
    current = destination.read_text(encoding="utf-8") if destination.is_file() else None
    if current == script:
        typer.echo(f"{destination} is already up to date")
    else:
        _write(destination, script)
        typer.echo(f"wrote {destination}")
    typer.echo(hint)
    info(f"open a new {shell.value} session to use it")


def _write(destination: Path, script: str) -> None:
    from stagectl.reports.io import write_atomic

    write_atomic(destination, script.encode("utf-8"))
