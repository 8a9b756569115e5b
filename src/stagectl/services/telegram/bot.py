"""``stagectl telegram serve``: the on-call bot, a long poll of the Bot API's
``getUpdates``.

Each update is taken once. Its event (``TELEGRAM_COMMAND``, or ``TELEGRAM_IGNORED`` for
a chat the bot does not answer) and the bot's offset (``state.telegram``) are written in
one transaction before the command acts, so a restarted bot asks Telegram for the
updates after it and never runs a command twice: a bot stopped between the two has
taken a command without running it, and the operator sends it again.

Every action goes through the service its CLI command uses: ``/halt`` and
``/reduce_only`` through ``services.trading.flags.run_set`` (``trading disable`` and
``trading reduce-only``: both modes), ``/confirm`` and ``/cancel`` through
``services.trading.directives`` (``trading confirm|cancel``), answered by the Telegram
user (``telegram @name (id)``). What waits for a ``/yes`` and when a message is too old
to act on is ``domain.oncall``'s.

A failed ``getUpdates`` is retried after the wait a 429 asks for, else after a backoff
doubling up to ``MAX_BACKOFF_S``; a token the Bot API refuses (401, 404) stops the bot
(exit 3). With ``once`` the bot reads what is waiting without a long poll, answers it
and returns. ``stop`` says when to stop, after the update being handled; while the bot
only waits (the long poll, a backoff) the caller may interrupt it outright.

Plain HTTP (``notify.telegram``, through ``notify._http``) rather than
python-telegram-bot: three Bot API methods, one at a time, need no asyncio application
owning the loop and the signals (which would fight ``main()``'s exit-130 contract), and
the alerts' masking of the token and reading of ``retry_after`` serve the bot too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from stagectl.config.home import Home
from stagectl.domain import oncall
from stagectl.domain.types import MODES, Event, TradingState
from stagectl.errors import ExternalError, InputError, InternalError, StagectlError
from stagectl.notify import telegram
from stagectl.services.telegram import settings as bot_settings
from stagectl.services.telegram import status
from stagectl.services.trading import directives as trading_directives
from stagectl.services.trading import flags as trading_flags
from stagectl.state import journal
from stagectl.state import telegram as offsets
from stagectl.state.db import StateDB, open_state
from stagectl.state.directives import RiskDirective, get_directive

TELEGRAM_KEEPS = timedelta(hours=24)
"""Telegram keeps an update this long; after a week without any it numbers anew."""
BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
COMMAND = "TELEGRAM_COMMAND"
IGNORED = "TELEGRAM_IGNORED"
REFUSED = "TELEGRAM_REFUSED"
SOURCE = "telegram"

Clock = Callable[[], datetime]


class StopControl(Protocol):
    """When to stop (checked between updates), and the scopes in which the bot only
    waits, where the caller may interrupt it at once."""

    def requested(self) -> bool: ...

    def waiting(self) -> AbstractContextManager[object]: ...


class _Never:
    def requested(self) -> bool:
        return False

    def waiting(self) -> AbstractContextManager[object]:
        return nullcontext()


@dataclass(frozen=True)
class ServeRequest:
    """The guard config holding ``notify.telegram`` (None: the home's), and whether to
    read what is waiting once instead of serving until stopped."""

    config: Path | None = None
    once: bool = False


@dataclass
class ServeResult:
    """What the bot took: updates, commands answered, messages from unknown chats."""

    bot_id: str
    chats: tuple[int, ...]
    updates: int = 0
    commands: int = 0
    ignored: int = 0
    last_update_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "chats": list(self.chats),
            "updates": self.updates,
            "commands": self.commands,
            "ignored": self.ignored,
            "last_update_id": self.last_update_id,
        }


@dataclass(frozen=True)
class Sender:
    """Who sent a message, from where, when."""

    chat_id: int
    user_id: int
    username: str | None
    sent_at: datetime

    @property
    def name(self) -> str:
        """Who answers a directive or sets a state: ``telegram @name (id)``."""
        handle = f"@{self.username}" if self.username else "user"
        return f"telegram {handle} ({self.user_id})"

    def payload(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "user_id": self.user_id, "username": self.username}


def serve(
    request: ServeRequest,
    *,
    home: Home,
    env: Mapping[str, str] | None = None,
    stop: StopControl | None = None,
    clock: Clock = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    on_note: Callable[[str], None] = lambda _: None,
) -> ServeResult:
    """Answer the configured chats until ``stop`` (or once); see the module docstring.
    ``env`` holds the token and chat id (default: the process environment)."""
    found = bot_settings.load(home, request.config, os.environ if env is None else env)
    control = stop or _Never()
    with open_state(home.state_path) as db:
        bot = _Bot(found, home, db, clock, sleep, on_note)
        failures = 0
        while not control.requested():
            offset = bot.offset()
            with control.waiting():
                polled = telegram.get_updates(
                    token=found.token,
                    offset=offset,
                    timeout_s=0 if request.once else found.poll_timeout_s,
                    api_base=found.api_base,
                )
            if polled.error is not None:
                failures += 1
                wait = _failed(found, polled, failures, once=request.once)
                on_note(f"getUpdates failed ({polled.error}); retrying in {wait:g} s")
                with control.waiting():
                    sleep(wait)
                continue
            failures = 0
            for update in polled.updates:
                bot.handle(update)
                if control.requested():
                    break
            if request.once:
                break
    return bot.result


def _failed(
    found: bot_settings.BotSettings, polled: telegram.Polled, failures: int, *, once: bool
) -> float:
    """The wait before the next getUpdates; ExternalError when there is none."""
    if polled.final:
        raise ExternalError(
            f"the Bot API refused the bot token ({polled.error}): check {found.token_source}",
            where="getUpdates",
        )
    if once and failures > found.retries:
        raise ExternalError(f"{polled.error}, {failures} times", where="getUpdates")
    if polled.wait is not None:
        return polled.wait
    return float(min(BACKOFF_S * 2 ** (failures - 1), MAX_BACKOFF_S))


@dataclass
class _Bot:
    settings: bot_settings.BotSettings
    home: Home
    db: StateDB
    clock: Clock
    sleep: Callable[[float], None]
    note: Callable[[str], None]
    result: ServeResult = field(init=False)
    pending: dict[int, oncall.Pending] = field(default_factory=dict)

    taken_at: datetime | None = None

    def __post_init__(self) -> None:
        self.result = ServeResult(self.settings.bot_id, tuple(sorted(self.settings.chat_ids)))
        last = offsets.last_taken(self.db, self.settings.bot_id)
        if last is not None:
            self.result.last_update_id, self.taken_at = last.update_id, last.taken_at

    def _new_stream(self) -> bool:
        """Whether the last update taken is older than Telegram keeps any: the updates
        that come are all new, and may be numbered anew (lower) after a quiet week."""
        return self.taken_at is None or self.clock() - self.taken_at > TELEGRAM_KEEPS

    def offset(self) -> int | None:
        """The ``offset`` of the next getUpdates: after the last update taken, or none
        when it is older than Telegram keeps updates (an offset above a renumbered
        stream would confirm, and so drop, every new message)."""
        last = self.result.last_update_id
        return None if last is None or self._new_stream() else last + 1

    def handle(self, update: dict[str, Any]) -> None:
        """Take one update (once), then answer it."""
        update_id = int(update["update_id"])
        last = self.result.last_update_id
        if last is not None and update_id <= last and not self._new_stream():
            return
        message = update.get("message")
        sender = _sender(message)
        found = message.get("text") if isinstance(message, dict) else None
        text = found if isinstance(found, str) else ""
        if sender is None:
            self._take(update_id, None)
            return
        if sender.chat_id not in self.settings.chat_ids:
            self._take(update_id, self._event(IGNORED, sender, update_id, text[:80], "ignored"))
            self.result.ignored += 1
            self.note(f"ignored a message from chat {sender.chat_id} (not configured)")
            return
        parsed = oncall.parse_command(text)
        if parsed is None:  # the desk talking, a photo: nothing to answer
            self._take(update_id, None)
            return
        name = parsed.describe() if isinstance(parsed, oncall.Command) else text[:80]
        event = self._event(COMMAND, sender, update_id, name, "taken")
        if isinstance(parsed, oncall.Command) and parsed.name not in oncall.READ_ONLY:
            event = replace(event, severity="HIGH")
        if not self._take(update_id, event):
            return
        self.result.commands += 1
        reply = parsed if isinstance(parsed, str) else self._answered(parsed, sender)
        self._reply(sender.chat_id, reply)

    def _take(self, update_id: int, event: Event | None) -> bool:
        """Mark the update taken and record its event in one transaction."""
        now, new_stream = self.clock(), self._new_stream()
        with self.db.transaction():
            taken = offsets.take_update(
                self.db, self.settings.bot_id, update_id, now=now, new_stream=new_stream
            )
            if taken and event is not None:
                journal.record_event(self.db, event)
        if taken:
            self.result.updates += 1
            self.result.last_update_id, self.taken_at = update_id, now
        return taken

    def _answered(self, command: oncall.Command, sender: Sender) -> str:
        """The reply; a command the state or a service refuses is a ``TELEGRAM_REFUSED``
        event and a reply saying why (a locked database, a directive not pending)."""
        try:
            return self._answer(command, sender)
        except StagectlError as error:
            return self._refused(command, sender, error)

    def _refused(self, command: oncall.Command, sender: Sender, error: StagectlError) -> str:
        event = self._event(REFUSED, sender, None, command.describe(), str(error))
        with self.db.transaction():
            journal.record_event(self.db, replace(event, severity="HIGH"))
        return f"{command.describe()} not done: {error}"

    def _answer(self, command: oncall.Command, sender: Sender) -> str:
        now = self.clock()
        if command.name == "help":
            return oncall.help_text()
        if command.name in ("status", "report"):
            standing = status.read(self.home, now)
            if command.name == "status":
                return status.status_text(standing, now)
            return status.report_text(standing)
        if oncall.too_old(sender.sent_at, now, self.settings.command_max_age):
            return (
                f"{command.describe()} not done: sent at {sender.sent_at:%H:%M:%S}Z, "
                f"read at {now:%H:%M:%S}Z (was the bot down?); send it again if still needed"
            )
        if command.needs_yes:
            what = _what(command, self._directive(command))
            self.pending[sender.chat_id] = oncall.Pending(
                command, sender.chat_id, sender.user_id, sender.sent_at
            )
            window = self.settings.confirm_within.total_seconds()
            return f"{what}\nSend /yes within {window:g} s to do it."
        chosen = oncall.confirmed(
            self.pending.get(sender.chat_id),
            chat_id=sender.chat_id,
            user_id=sender.user_id,
            at=sender.sent_at,
            within=self.settings.confirm_within,
        )
        if isinstance(chosen, str):
            return chosen
        del self.pending[sender.chat_id]
        try:
            return _run(chosen, sender, self.home, self.clock)
        except StagectlError as error:
            return self._refused(chosen, sender, error)

    def _directive(self, command: oncall.Command) -> RiskDirective | None:
        """The directive a /confirm or /cancel names, shown before its /yes; InputError
        when there is none (nothing then waits for a /yes)."""
        if command.directive_id is None:
            return None
        found = get_directive(self.db, command.directive_id)
        if found is None:
            raise InputError(f"no directive {command.directive_id}", where="ID")
        return found

    def _event(
        self, kind: str, sender: Sender, update_id: int | None, text: str, outcome: str
    ) -> Event:
        """The journal event of a message (MEDIUM for an unknown chat, else INFO)."""
        return Event(
            ts=self.clock(),
            event_type=kind,
            severity="MEDIUM" if kind == IGNORED else "INFO",
            action=kind,
            message=f"{text} from {sender.name} in chat {sender.chat_id}: {outcome}",
            payload={
                **sender.payload(),
                "update_id": update_id,
                "sent_at": sender.sent_at,
                "text": text,
                "outcome": outcome,
            },
        )

    def _reply(self, chat_id: int, text: str) -> None:
        sent = telegram.send_message(
            text,
            token=self.settings.token,
            chat_id=str(chat_id),
            api_base=self.settings.api_base,
            retries=self.settings.retries,
            sleep=self.sleep,
        )
        if not sent.sent:
            self.note(f"the reply to chat {chat_id} was not sent ({sent.error})")


def _run(command: oncall.Command, sender: Sender, home: Home, clock: Clock) -> str:
    """Run a confirmed command through its CLI command's service."""
    if command.name in ("halt", "reduce_only"):
        state = TradingState.HALTED if command.name == "halt" else TradingState.REDUCE_ONLY
        reason = f"{command.note or 'from Telegram'} (by {sender.name})"
        request = trading_flags.TradingSetRequest(state, modes=MODES, reason=reason, source=SOURCE)
        changed = trading_flags.run_set(request, home=home, clock=clock)
        return "\n".join(
            f"{c.mode}: {c.from_state.value} -> {c.to_state.value}" for c in changed.changes
        )
    if command.directive_id is None:
        raise InternalError(f"/{command.name} without a directive id")
    step = trading_directives.DirectiveRequest(
        command.directive_id, by=sender.name, reason=command.note
    )
    if command.name == "confirm":
        change = trading_directives.run_confirm(step, home=home, clock=clock)
    else:
        change = trading_directives.run_cancel(step, home=home, clock=clock)
    d = change.directive
    return f"directive {d.id} ({d.action} {d.sleeve or 'all'}, {d.mode or 'paper+live'}): " + (
        f"{change.before.value} -> {d.state.value}"
    )


def _what(command: oncall.Command, d: RiskDirective | None) -> str:
    """What a command will do, said before its /yes (a directive as ``/status`` shows
    it, so a mistyped id is seen before it acts)."""
    if command.name == "halt":
        return "/halt sets HALTED on paper and live: no new order is sent (positions stay)."
    if command.name == "reduce_only":
        return "/reduce_only sets REDUCE_ONLY on paper and live: only reducing orders are sent."
    named = "the directive"
    if d is not None:
        named = (
            f"directive {d.id}, {d.action} {d.sleeve or 'all'} ({d.mode or 'paper+live'}, "
            f"{d.state.value}, rule {d.rule or '-'})"
        )
    if command.name == "confirm":
        return f"/confirm {command.directive_id}: {named} binds the loop from its next bar."
    return f"/cancel {command.directive_id}: {named} is vetoed and never binds."


def _sender(message: object) -> Sender | None:
    if not isinstance(message, dict):
        return None
    chat, user, date = message.get("chat"), message.get("from"), message.get("date")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return None
    if not isinstance(date, int):
        return None
    user = user if isinstance(user, dict) else {}
    found_id = user.get("id")
    user_id = found_id if isinstance(found_id, int) else 0
    username = user.get("username") if isinstance(user.get("username"), str) else None
    return Sender(chat["id"], user_id, username, datetime.fromtimestamp(date, UTC))
