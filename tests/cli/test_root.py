"""The root command's contract: version, help, unknown flags, unknown commands."""

from __future__ import annotations

from stagectl import __version__
from tests.conftest import Run


def test_version_prints_the_package_version(run: Run) -> None:
    result = run(["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"stagectl {__version__}"


def test_help_lists_every_registered_command(run: Run) -> None:
    from stagectl.cli.main import COMMANDS

    result = run(["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_unknown_flag_is_a_usage_error_on_one_line(run: Run) -> None:
    result = run(["--no-such-flag"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("stagectl: No such option: --no-such-flag")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error(run: Run) -> None:
    result = run(["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_no_arguments_shows_help_on_stderr_with_usage_exit(run: Run) -> None:
    result = run([])
    assert result.exit_code == 2
    assert "Usage: stagectl" in result.stderr
