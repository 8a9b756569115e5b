"""A Telegram Bot API stand-in on 127.0.0.1: ``getUpdates`` (a long poll over the
messages the test posts, honouring ``offset`` as Telegram does), ``sendMessage`` and
``getMe``; a wrong token gets Telegram's 401. ``forget_offsets`` makes it deliver every
message again whatever the offset, as Telegram does when the bot's last offset never
reached it (the bot stopped before its next getUpdates)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "123456:stub-token-abcdefghij"
MAX_HOLD_S = 5.0
"""The longest the stub holds a long poll (a stopped test never waits longer)."""


@dataclass
class BotApi:
    """The stub's messages, what it was sent, and its script of 429 answers."""

    url: str = ""
    token: str = TOKEN
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list)
    rate_limits: list[int] = field(default_factory=list)
    """``retry_after`` of the 429 the next getUpdates calls get, one each."""
    poll_errors: list[int] = field(default_factory=list)
    """The HTTP status (409, 502, ...) the next getUpdates calls get, one each."""
    forget_offsets: bool = False
    polled: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def message(
        self,
        text: str,
        *,
        chat_id: int = 42,
        user_id: int = 7,
        username: str | None = "oncall",
        sent_at: float | None = None,
    ) -> int:
        """Post a message to the bot; its update id."""
        with self.changed:
            update_id = 1000 + len(self.updates)
            sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "On"}
            if username is not None:
                sender["username"] = username
            self.updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": len(self.updates) + 1,
                        "date": int(time.time() if sent_at is None else sent_at),
                        "chat": {"id": chat_id, "type": "private"},
                        "from": sender,
                        "text": text,
                    },
                }
            )
            self.changed.notify_all()
        return update_id

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent]

    def _waiting(self, offset: int | None) -> list[dict[str, Any]]:
        if self.forget_offsets or offset is None:
            return list(self.updates)
        return [u for u in self.updates if u["update_id"] >= offset]

    def get_updates(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.changed:
            self.polls.append(body)
            self.polled.set()
            if self.poll_errors:
                status = self.poll_errors.pop(0)
                return status, {"ok": False, "error_code": status, "description": "stub"}
            if self.rate_limits:
                wait = self.rate_limits.pop(0)
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests",
                    "parameters": {"retry_after": wait},
                }
            offset = body.get("offset")
            hold = min(float(body.get("timeout", 0)), MAX_HOLD_S)
            self.changed.wait_for(lambda: bool(self._waiting(offset)), timeout=hold)
            return 200, {"ok": True, "result": self._waiting(offset)}


@contextmanager
def serve_bot_api(api: BotApi | None = None) -> Iterator[BotApi]:
    """A running stub."""
    stub = api or BotApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            prefix = f"/bot{stub.token}/"
            if not self.path.startswith(prefix):
                self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            method = self.path[len(prefix) :]
            if method == "getUpdates":
                self._answer(*stub.get_updates(body))
            elif method == "sendMessage":
                with stub.changed:
                    stub.sent.append(body)
                self._answer(200, {"ok": True, "result": {"message_id": len(stub.sent)}})
            elif method == "getMe":
                result = {"id": 123456, "is_bot": True, "username": "stagectl_stub_bot"}
                self._answer(200, {"ok": True, "result": result})
            else:
                self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the bot was stopped while it waited for this answer

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield stub
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
