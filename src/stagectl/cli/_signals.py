"""SIGINT and SIGTERM, handled in one place for every command (docs/cli.md, "Exit codes").

``main()`` runs each command with an :class:`Interrupter`: SIGINT or SIGTERM raises
:class:`~stagectl.errors.Interrupted` in the main thread, wherever the command is, so
it unwinds as it would from an error: an open transaction rolls back, ``write_atomic``
removes its temporary file, and nothing half-written is left. ``main()`` then prints
``stagectl: interrupted`` and returns 130. A signal that arrives while an
``Interrupted`` is already unwinding is ignored, so a second Ctrl-C cannot cut a
rollback or a cleanup short.

A command that stops gracefully instead opens its own :func:`handling` scope inside
(run-live finishes its bar and writes its artifacts); the handlers it replaced come
back when the scope ends.

Python runs signal handlers in the main thread only, and only there can one be set: in
another thread (a test calling ``main()`` from one) the scopes install nothing. A
signal the parent process ignores (SIG_IGN: a non-interactive shell starts background
jobs with SIGINT ignored) stays ignored.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from stagectl.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], None]


@contextmanager
def handling(handler: Handler) -> Iterator[bool]:
    """Run the block with ``handler`` for SIGINT and SIGTERM, then restore the handlers
    it replaced. Yields whether it installed any (none outside the main thread)."""
    previous: dict[signal.Signals, Callable[..., object] | int] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            # None: a handler set outside Python, which could not be put back
            if current is not None and current != signal.SIG_IGN:
                previous[signum] = current
    try:
        for signum in previous:
            signal.signal(signum, handler)
        yield bool(previous)
    finally:
        for signum, replaced in previous.items():
            signal.signal(signum, replaced)


class Interrupter:
    """The handler ``main()`` runs every command with: SIGINT or SIGTERM raises
    :class:`Interrupted`, unless one is already unwinding. ``signum`` is the last signal
    received, also one that raised nothing: ``main()`` exits 130 whenever it is set (an
    ``Interrupted`` raised inside a ``__del__`` is printed and dropped by Python)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raising = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if self._raising and not _unwinding():
            raise Interrupted(signum)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM while the block runs. Once the block is done a signal
        is only recorded, so none can cut the restoring of the previous handlers short."""
        self._raising = True
        with handling(self):
            try:
                yield
            finally:
                self._raising = False


def after_interruption(error: BaseException | None) -> bool:
    """Whether ``error`` is an ``Interrupted`` or was raised while one unwound (an error
    in a cleanup, or ``threading`` cut short inside its own bookkeeping)."""
    while error is not None:
        if isinstance(error, Interrupted):
            return True
        error = error.__context__
    return False


def _unwinding() -> bool:
    """Whether an ``Interrupted`` is being handled or propagating here (an ``except`` or
    ``finally`` block on its way out, or an error raised while cleaning up after it)."""
    return after_interruption(sys.exc_info()[1])
