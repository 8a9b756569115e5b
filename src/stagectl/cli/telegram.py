"""``stagectl telegram``: on-call from Telegram (docs/operations.md, "On-call from
Telegram"): ``serve`` runs the bot, ``test`` checks its token and chats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, config_option, info, print_json
from stagectl.errors import Interrupted

app = typer.Typer(
    help="On-call from Telegram. Example: stagectl telegram serve",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

GuardConfigOpt = Annotated[Path | None, config_option("risk_guard_alt_ensemble.yaml")]


@app.callback()
def telegram() -> None:
    """On-call from Telegram. Example: stagectl telegram serve"""


@app.command("serve")
def serve(
    ctx: typer.Context,
    config: GuardConfigOpt = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Answer the messages waiting now (no long poll), then exit 0.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run the on-call bot: a long poll of the Telegram Bot API answering /status, /report,
    /halt, /reduce_only, /confirm ID, /cancel ID REASON and /yes from the configured
    chats only (the risk guard config's notify.telegram section; the token from
    FUTURES_TELEGRAM_BOT_TOKEN, as that section names it, or its bot_token_file of mode
    0600). /halt, /reduce_only, /confirm and /cancel act only on a /yes within
    confirm_within_s. Every message is recorded as an event with its Telegram user; a
    restart resumes after the last one taken.

    SIGINT/SIGTERM stop it after the message in hand (at once while it waits) with exit
    130. Its notes (a failed poll, a message from an unknown chat) also go to
    HOME/logs/telegram-serve.jsonl. Exit 0 after --once; 2 bad config or no token or
    chat; 3 the Bot API refused the token (or, with --once, kept failing).

    Example: stagectl telegram serve
    """
    from stagectl.cli._logs import WARNING
    from stagectl.cli._observe import observed
    from stagectl.services.telegram import bot

    home = cli_context(ctx).home
    stop = _Stop()
    with observed(home, "telegram serve", metrics_file=None) as observation:

        def note(text: str) -> None:
            info(text)
            observation.event("note", WARNING, message=text)

        with stop.installed():
            result = bot.serve(
                bot.ServeRequest(config=config, once=once), home=home, stop=stop, on_note=note
            )
        observation.event("served", **result.to_dict())
    if json_output:
        print_json(result.to_dict())
    else:
        info(
            f"bot {result.bot_id}: {result.updates} update(s) taken, {result.commands} "
            f"command(s), {result.ignored} from unknown chats; last update "
            f"{result.last_update_id if result.last_update_id is not None else '-'}"
        )
    if stop.signum is not None:
        raise Interrupted(stop.signum)


@app.command("test")
def check_bot(
    ctx: typer.Context, config: GuardConfigOpt = None, json_output: JsonOpt = False
) -> None:
    """Check the bot token (getMe) and send a test message to each configured chat.

    With no chat configured it lists the chats that wrote to the bot (to find the chat
    id) and exits 1.

    Exit 0 every chat got it; 1 a chat refused it, or none is configured; 2 bad config or
    no token; 3 the Bot API refused the token or could not be reached.

    Example: stagectl telegram test
    """
    from stagectl.services.telegram import check

    result = check.run(check.CheckRequest(config), home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
    else:
        info(f"bot {result.bot_id} (@{result.username or '?'}), token from {result.token_source}")
        for chat_id, error in result.chats.items():
            typer.echo(f"chat {chat_id}: {'sent' if error is None else 'FAILED: ' + error}")
        if not result.chats:
            info(
                "no chat configured: set FUTURES_TELEGRAM_CHAT_ID (or the guard config's "
                "notify.telegram.command_chat_ids) to a chat id below; send the bot a "
                "message first if none is listed"
            )
            for chat_id, label in result.seen.items():
                typer.echo(f"chat {chat_id}: {label or '-'} wrote to the bot")
    if not result.passed:
        raise typer.Exit(1)


class _Stop:
    """SIGINT/SIGTERM: while the bot only waits (the long poll, a backoff) it stops at
    once; while it handles a message it finishes that message, then stops."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._idle = False

    def requested(self) -> bool:
        return self.signum is not None

    @contextmanager
    def waiting(self) -> Iterator[None]:
        if self.signum is not None:
            raise Interrupted(self.signum)
        self._idle = True
        try:
            yield
        finally:
            self._idle = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if self._idle:
            self._idle = False
            raise Interrupted(signum)
        info(f"signal {signum}: finishing the message in hand, then stopping")

    @contextmanager
    def installed(self) -> Iterator[None]:
        from stagectl.cli._signals import handling

        with handling(self._handle):
            yield
