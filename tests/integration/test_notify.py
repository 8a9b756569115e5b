"""Telegram and webhook notifications against a loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from stagectl.notify import telegram, webhook

TOKEN = "123456:SECRET-token-never-shown"


@dataclass
class Loopback:
    """A local server answering ``statuses`` in turn (then the last one forever)."""

    statuses: list[int]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Loopback]:
    loop = Loopback(statuses=list(request.param))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            loop.requests.append({"path": self.path, "body": body})
            index = min(len(loop.requests), len(loop.statuses)) - 1
            self.send_response(loop.statuses[index])
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            return

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    loop.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield loop
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def no_sleep(_: float) -> None:
    return


@pytest.mark.parametrize("server", [[200]], indirect=True)
def test_telegram_sends_the_message_to_the_chat(server: Loopback) -> None:
    result = telegram.send_message(
        "FLATTEN_ALL", token=TOKEN, chat_id="42", api_base=server.url, sleep=no_sleep
    )
    assert result.sent and result.attempts == 1
    assert server.requests == [
        {"path": f"/bot{TOKEN}/sendMessage", "body": {"chat_id": "42", "text": "FLATTEN_ALL"}}
    ]


@pytest.mark.parametrize("server", [[500, 502, 200]], indirect=True)
def test_telegram_retries_a_server_that_fails_twice(server: Loopback) -> None:
    result = telegram.send_message(
        "WARNING", token=TOKEN, chat_id="42", api_base=server.url, sleep=no_sleep
    )
    assert result.status == "sent"
    assert result.attempts == 3
    assert len(server.requests) == 3


@pytest.mark.parametrize("server", [[503]], indirect=True)
def test_telegram_gives_up_after_three_retries_without_revealing_the_token(
    server: Loopback,
) -> None:
    waits: list[float] = []
    result = telegram.send_message(
        "CRITICAL", token=TOKEN, chat_id="42", api_base=server.url, sleep=waits.append
    )
    assert result.status == "failed"
    assert result.attempts == 4
    assert result.error == "HTTP 503"
    assert waits == [0.5, 1.0, 2.0]
    assert TOKEN not in json.dumps(result.to_dict())


def test_unreachable_telegram_fails_without_raising_or_revealing_the_token() -> None:
    result = telegram.send_message(
        "x", token=TOKEN, chat_id="1", api_base="http://127.0.0.1:9", retries=1, sleep=no_sleep
    )
    assert result.status == "failed" and result.attempts == 2
    assert TOKEN not in (result.error or "")


def test_missing_credentials_skip_the_message() -> None:
    result = telegram.send_from_env(
        "x", {}, token_env="FUTURES_TELEGRAM_BOT_TOKEN", chat_id_env="FUTURES_TELEGRAM_CHAT_ID"
    )
    assert result.status == "skipped"
    assert result.error == "FUTURES_TELEGRAM_BOT_TOKEN and FUTURES_TELEGRAM_CHAT_ID not set"


@pytest.mark.parametrize("server", [[404, 200]], indirect=True)
def test_webhook_posts_the_alert_as_json(server: Loopback) -> None:
    result = webhook.post_alert(f"{server.url}/hook", {"action": "WARNING"}, sleep=no_sleep)
    assert result.sent and result.attempts == 2
    assert server.requests[-1] == {"path": "/hook", "body": {"action": "WARNING"}}
