"""The on-call bot's commands (``stagectl telegram serve``): what a message asks, and
whether a ``/yes`` confirms what was asked before.

Pure: a message's text in, a :class:`Command` or a usage line out; a pending command and
a ``/yes`` in, the command to run or the reason not to. Times are the messages' own
(Telegram's ``date``), so the same messages give the same answers in a test and at 3 a.m.

``/halt``, ``/reduce_only``, ``/confirm ID`` and ``/cancel ID REASON`` change what the
book does: each waits for a ``/yes`` from the same person in the same chat within the
confirmation window, and a new one replaces the one waiting. ``/status``, ``/report``
and ``/help`` only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

READ_ONLY = ("status", "report", "help")
NEEDS_YES = ("halt", "reduce_only", "confirm", "cancel")
YES = "yes"
MAX_NOTE_CHARS = 500

USAGE = {
    "status": "/status: trading state, directives, equity, drawdown, last guard decision",
    "report": "/report: the latest risk guard decision and report",
    "halt": "/halt [reason]: HALTED, paper and live (asks for /yes)",
    "reduce_only": "/reduce_only [reason]: REDUCE_ONLY, paper and live (asks for /yes)",
    "confirm": "/confirm ID: confirm a pending risk directive (asks for /yes)",
    "cancel": "/cancel ID REASON: veto a pending risk directive (asks for /yes)",
    "yes": "/yes: do what the last /halt, /reduce_only, /confirm or /cancel asked",
    "help": "/help: this list",
}


@dataclass(frozen=True)
class Command:
    """A command: its name (``READ_ONLY``, ``NEEDS_YES`` or ``yes``), the directive it
    names and the free text after it (the reason)."""

    name: str
    directive_id: int | None = None
    note: str = ""

    @property
    def needs_yes(self) -> bool:
        return self.name in NEEDS_YES

    def describe(self) -> str:
        """The command as the operator typed it, for replies and the journal."""
        parts = [f"/{self.name}"]
        if self.directive_id is not None:
            parts.append(str(self.directive_id))
        if self.note:
            parts.append(self.note)
        return " ".join(parts)


@dataclass(frozen=True)
class Pending:
    """A command waiting for its ``/yes``: who asked, in which chat, when."""

    command: Command
    chat_id: int
    user_id: int
    asked_at: datetime


def parse_command(text: str) -> Command | str | None:
    """The command of a message, a usage line saying what is wrong with it, or None for
    a message that is no command (the desk talking in its chat: no answer).
    ``/cmd@BotName`` (a group chat's form) is the same as ``/cmd``; names are not
    case-sensitive."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    name = words[0][1:].split("@", 1)[0].lower()
    rest = words[1:]
    if name in READ_ONLY or name == YES:
        return Command(name) if not rest else f"{USAGE[name]} (it takes nothing after it)"
    if name in ("halt", "reduce_only"):
        return Command(name, note=_note(rest))
    if name in ("confirm", "cancel"):
        if not rest or not rest[0].isdigit() or int(rest[0]) < 1:
            return f"say which directive: {USAGE[name]}"
        note = _note(rest[1:])
        if name == "cancel" and not note:
            return f"say why: {USAGE[name]}"
        return Command(name, directive_id=int(rest[0]), note=note)
    return f"unknown command /{name}: " + help_text()


def _note(words: list[str]) -> str:
    return " ".join(words)[:MAX_NOTE_CHARS]


def help_text() -> str:
    return "the commands are\n" + "\n".join(USAGE.values())


def confirmed(
    pending: Pending | None, *, chat_id: int, user_id: int, at: datetime, within: timedelta
) -> Command | str:
    """The command a ``/yes`` at ``at`` confirms, or why it confirms nothing: nothing is
    waiting in this chat, someone else asked, or the window has passed."""
    if pending is None or pending.chat_id != chat_id:
        return "nothing waits for a /yes"
    if pending.user_id != user_id:
        return f"{pending.command.describe()} waits for a /yes from the person who sent it"
    if at - pending.asked_at > within:
        return (
            f"{pending.command.describe()} expired: no /yes within "
            f"{within.total_seconds():g} s; send it again"
        )
    return pending.command


def too_old(sent_at: datetime, now: datetime, max_age: timedelta) -> bool:
    """A message read later than ``max_age`` after it was sent (the bot was down): its
    command is not run, since the book may have moved on."""
    return now - sent_at > max_age
