"""The exit code and the one line a failed command ends with (docs/cli.md, "Exit codes").

``main()`` prints these lines; a scheduled command's could-not-judge alert sends the
same one. Only typer and the standard library are imported: ``main`` imports this module.
"""

from __future__ import annotations

from typer._click import exceptions as click_errors

from stagectl.errors import EXIT_INTERNAL, EXIT_USAGE, StagectlError


def internal_error_line(error: BaseException) -> str:
    """An unexpected exception as one line: its class and the first line of its text."""
    detail = str(error).splitlines()[0][:200] if str(error) else ""
    return (
        f"internal error ({type(error).__name__}{': ' + detail if detail else ''}); "
        "rerun with --debug for the traceback and report it"
    )


def public_line(line: str) -> str:
    """``line`` with every URL cut to its scheme and host: an error may quote a value
    whole, and a webhook or apprise URL carries its token (``notify.webhook_url: ...
    (got 'https://hooks.slack.com/services/T0/B0/SECRET')``)."""
    from stagectl.notify._secrets import mask_urls

    return mask_urls(line)


def failure_of(error: Exception) -> tuple[int, str]:
    """The exit code ``main()`` gives ``error`` and the line it prints for it."""
    if isinstance(error, StagectlError):
        return error.exit_code, public_line(str(error))
    if isinstance(error, click_errors.ClickException):
        return EXIT_USAGE, public_line(error.format_message())
    return EXIT_INTERNAL, public_line(internal_error_line(error))
