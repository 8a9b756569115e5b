"""The stagectl error tree: each class carries the exit code it maps to.

The CLI contract (docs/cli.md): 0 ok; 1 a check failed, a threshold was
breached or an action is recommended; 2 usage or input error; 3 external
failure (exchange, network, database locked); 70 internal bug; 130 interrupted
(:class:`Interrupted`). Only ``stagectl.cli.main.main`` turns these into process exit
codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_EXTERNAL = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class StagectlError(Exception):
    """Base of every error stagectl reports to a user as one line."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class CheckFailed(StagectlError):
    """A check failed, a threshold was breached or an action is recommended."""

    exit_code = EXIT_CHECK_FAILED


class InputError(StagectlError):
    """Bad user input: a flag, a file, a value. ``where`` names file:line or field."""

    exit_code = EXIT_USAGE


class ConfigError(InputError):
    """A config file is unreadable, not YAML, or fails validation."""


class SigningKeyError(InputError):
    """No HMAC key is configured, or the key file is unsafe."""


class ExternalError(StagectlError):
    """The exchange, the network or the database failed outside our control."""

    exit_code = EXIT_EXTERNAL


class StateLockedError(ExternalError):
    """The state database stayed locked past its busy timeout."""


class InternalError(StagectlError):
    """A bug in stagectl."""

    exit_code = EXIT_INTERNAL


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the command (exit 130; ``stagectl.cli._signals``).

    A ``BaseException``, as ``KeyboardInterrupt`` is, so no ``except Exception`` swallows
    it and every ``finally`` and ``except BaseException`` cleanup on the way out runs: an
    open transaction rolls back, ``write_atomic`` removes its temporary file. Not a
    ``KeyboardInterrupt``: typer turns one into a bare exit 130 before ``main()`` can say
    that the command was interrupted.
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signum: int | None = None) -> None:
        super().__init__("interrupted")
        self.signum = signum


def first_line(error: BaseException) -> str:
    """An error's first line for a one-line message (its class name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
