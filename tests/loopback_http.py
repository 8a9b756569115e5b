"""A tiny HTTP server on 127.0.0.1 that records the requests it gets and answers from a
script: the stand-in for Telegram, a webhook or an apprise ``json://`` endpoint."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a status, headers and a JSON body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = field(default_factory=dict)


@dataclass
class Loopback:
    """The server's script (``answers`` in turn, then the last one forever) and what it
    received: each request's path, headers and raw body."""

    answers: list[Answer]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def bodies(self) -> list[Any]:
        """Each request's body parsed as JSON (a body that is not JSON fails the test)."""
        return [json.loads(r["raw"]) for r in self.requests]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(*answers: Answer | int) -> Iterator[Loopback]:
    """A running server answering ``answers`` (a bare int: that status, empty JSON)."""
    script = [a if isinstance(a, Answer) else Answer(a) for a in answers] or [Answer()]
    loop = Loopback(answers=script)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with lock:
                loop.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "raw": raw.decode()}
                )
                answer = loop.answers[min(len(loop.requests), len(loop.answers)) - 1]
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    loop.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield loop
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
