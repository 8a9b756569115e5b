"""Telegram, webhook and apprise notifications against a loopback HTTP server."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.risk_guard import NotifyConfig, TelegramConfig
from stagectl.notify import Alert, Delivery, dispatch, telegram, webhook
from stagectl.notify._http import MAX_RETRY_AFTER_S, retry_after_header
from stagectl.notify._secrets import mask_urls
from tests.loopback_http import Answer, serve

TOKEN = "123456:SECRET-token-never-shown"
SLACK_TOKEN = "xoxb-slack-SECRET-9f8e7d6c"


def no_sleep(_: float) -> None:
    return


class Side(Enum):
    BUY = "buy"


def settings(**fields: Any) -> NotifyConfig:
    base: dict[str, Any] = {
        "telegram": TelegramConfig(bot_token_env="BOT_TOKEN", chat_id_env="CHAT_ID"),
        "retries": 3,
        "alert_within_min": 15,
    }
    return NotifyConfig.model_validate({**base, **fields})


def test_telegram_sends_the_message_to_the_chat() -> None:
    with serve(200) as server:
        result = telegram.send_message(
            "FLATTEN_ALL", token=TOKEN, chat_id="42", api_base=server.url, sleep=no_sleep
        )
    assert result.sent and result.attempts == 1
    assert server.requests[0]["path"] == f"/bot{TOKEN}/sendMessage"
    assert server.bodies() == [{"chat_id": "42", "text": "FLATTEN_ALL"}]


def test_telegram_retries_a_server_that_fails_twice() -> None:
    with serve(500, 502, 200) as server:
        result = telegram.send_message(
            "WARNING", token=TOKEN, chat_id="42", api_base=server.url, sleep=no_sleep
        )
    assert result.status == "sent"
    assert result.attempts == 3
    assert len(server.requests) == 3


def test_telegram_gives_up_after_three_retries_without_revealing_the_token() -> None:
    waits: list[float] = []
    with serve(503) as server:
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
    section = TelegramConfig(
        bot_token_env="FUTURES_TELEGRAM_BOT_TOKEN", chat_id_env="FUTURES_TELEGRAM_CHAT_ID"
    )
    result = telegram.send_configured("x", section, {})
    assert result.status == "skipped"
    assert result.reason == "FUTURES_TELEGRAM_BOT_TOKEN and FUTURES_TELEGRAM_CHAT_ID not set"


def _token_file(home: Path, mode: int, text: str = TOKEN + "\n") -> NotifyConfig:
    (home / "secrets").mkdir(exist_ok=True)
    path = home / "secrets" / "bot_token"
    path.write_text(text)
    path.chmod(mode)
    section = TelegramConfig(
        bot_token_env="BOT_TOKEN", chat_id_env="CHAT_ID", bot_token_file="secrets/bot_token"
    )
    return settings(telegram=section)


def test_alerts_read_the_bot_token_file_the_bot_reads(tmp_path: Path) -> None:
    """bot_token_file once served the on-call bot only: an alert with the token in that
    file (and not in the environment) was skipped as "not set"."""
    config = _token_file(tmp_path, 0o600)
    env = {"CHAT_ID": "42", telegram.API_BASE_ENV: ""}
    with serve(200) as server:
        env[telegram.API_BASE_ENV] = server.url
        [result] = dispatch.send(Alert("CRITICAL"), config, env, Delivery(base_dir=tmp_path))
    assert result.sent
    assert server.requests[0]["path"] == f"/bot{TOKEN}/sendMessage"
    masked = dispatch.mask_secrets(f"see {TOKEN}", config, env, Delivery(base_dir=tmp_path))
    assert TOKEN not in masked


def test_an_unsafe_bot_token_file_fails_the_channel_naming_the_file(tmp_path: Path) -> None:
    config = _token_file(tmp_path, 0o644)
    [result] = dispatch.send(Alert("x"), config, {"CHAT_ID": "42"}, Delivery(base_dir=tmp_path))
    assert result.status == "failed"
    assert "bot_token" in (result.error or "") and "chmod 600" in (result.error or "")
    assert TOKEN not in (result.error or "")
    empty = _token_file(tmp_path, 0o600, "\n")
    [result] = dispatch.send(Alert("x"), empty, {"CHAT_ID": "42"}, Delivery(base_dir=tmp_path))
    assert result.status == "failed" and "is empty" in (result.error or "")


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_client_error_is_not_retried(status: int) -> None:
    waits: list[float] = []
    with serve(status, 200) as server:
        result = telegram.send_message(
            "x", token=TOKEN, chat_id="42", api_base=server.url, sleep=waits.append
        )
    assert (result.status, result.attempts, result.error) == ("failed", 1, f"HTTP {status}")
    assert len(server.requests) == 1 and waits == []


def test_telegram_429_waits_the_retry_after_of_its_body() -> None:
    limited = Answer(429, body={"ok": False, "error_code": 429, "parameters": {"retry_after": 7}})
    waits: list[float] = []
    with serve(limited, 200) as server:
        result = telegram.send_message(
            "x", token=TOKEN, chat_id="42", api_base=server.url, sleep=waits.append
        )
    assert result.sent and result.attempts == 2
    assert waits == [7.0]
    assert len(server.requests) == 2


def test_a_429_waits_the_retry_after_header() -> None:
    waits: list[float] = []
    with serve(Answer(429, headers={"Retry-After": "3"}), 200) as server:
        result = webhook.post_alert(f"{server.url}/hook", {"a": 1}, sleep=waits.append)
    assert result.sent and waits == [3.0]
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("Wed, 21 Oct 2026 07:28:07 GMT", 7.0),  # RFC 9110's IMF-fixdate
        ("Wednesday, 21-Oct-26 07:28:07 GMT", 7.0),  # the obsolete RFC 850 form
        ("Wed, 21 Oct 2026 07:27:59 GMT", 0.0),  # already past: retry at once
        ("soon", None),
    ],
)
def test_an_http_date_retry_after_is_a_wait_from_now(value: str, wait: float | None) -> None:
    """An HTTP-date Retry-After was once read as no hint (so the backoff, not the wait)."""
    now = datetime(2026, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert retry_after_header({"retry-after": value}, b"", now=lambda: now) == wait


def test_a_429_with_an_http_date_waits_until_then() -> None:
    waits: list[float] = []
    later = datetime.now(UTC) + timedelta(seconds=30)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    with serve(Answer(429, headers={"Retry-After": header}), 200) as server:
        result = webhook.post_alert(f"{server.url}/hook", {"a": 1}, sleep=waits.append)
    assert result.sent and len(waits) == 1 and 20 < waits[0] <= 30


def test_a_429_without_a_wait_backs_off() -> None:
    waits: list[float] = []
    with serve(429, 429, 200) as server:
        result = webhook.post_alert(f"{server.url}/hook", {"a": 1}, sleep=waits.append)
    assert result.sent and waits == [0.5, 1.0]
    assert len(server.requests) == 3


def test_a_429_asking_for_more_than_the_cap_gives_up_and_says_why() -> None:
    asked = MAX_RETRY_AFTER_S + 1
    limited = Answer(429, body={"ok": False, "parameters": {"retry_after": asked}})
    waits: list[float] = []
    with serve(limited, 200) as server:
        result = telegram.send_message(
            "x", token=TOKEN, chat_id="42", api_base=server.url, sleep=waits.append
        )
    assert (result.status, result.attempts) == ("failed", 1)
    assert result.error is not None
    assert "rate limited" in result.error and f"{asked:g} s" in result.error
    assert waits == [] and len(server.requests) == 1


def test_the_webhook_gets_every_value_as_json() -> None:
    at = datetime(2025, 2, 9, 23, 10, tzinfo=UTC)
    payload = {
        "at": at,
        "local": datetime(2025, 2, 10, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2025, 2, 9),
        "pnl": Decimal("-12.50"),
        "side": Side.BUY,
        "path": Path("/srv/x"),
        "nan": float("nan"),
        "other": object.__new__(type("Odd", (), {"__str__": lambda self: "odd value"})),
    }
    with serve(200) as server:
        result = webhook.post_alert(f"{server.url}/hook", payload, sleep=no_sleep)
    assert result.sent
    [body] = server.bodies()
    assert body == {
        "at": "2025-02-09T23:10:00Z",
        "local": "2025-02-09T23:10:00Z",
        "day": "2025-02-09",
        "pnl": "-12.50",
        "side": "buy",
        "path": "/srv/x",
        "nan": None,
        "other": "odd value",
    }


def test_an_unserialisable_payload_is_a_failed_result_not_an_exception() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    result = webhook.post_alert("http://127.0.0.1:9/hook", {"cycle": cycle}, sleep=no_sleep)
    assert (result.status, result.attempts) == ("failed", 0)
    assert result.error == "the alert could not be written as JSON (RecursionError)"


def test_apprise_sends_the_alert_text_to_a_json_url_with_a_token_from_the_environment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {"SLACK_TOKEN": SLACK_TOKEN}
    with serve(200) as server:
        port = server.url.rsplit(":", 1)[1]
        config = settings(apprise_urls=[f"json://127.0.0.1:{port}/${{SLACK_TOKEN}}/alerts"])
        results = dispatch.send(
            Alert("FLATTEN_ALL (CRITICAL)", severity="CRITICAL"),
            config,
            env,
            Delivery(sleep=no_sleep),
        )
    by_channel = {r.channel: r for r in results}
    assert by_channel["apprise:json"].sent
    assert by_channel["telegram"].status == "skipped"
    [request] = server.requests
    assert request["path"] == f"/{SLACK_TOKEN}/alerts"
    body = json.loads(request["raw"])
    assert (body["message"], body["type"]) == ("FLATTEN_ALL (CRITICAL)", "failure")
    assert SLACK_TOKEN not in json.dumps([r.to_dict() for r in results])
    assert SLACK_TOKEN not in caplog.text


def test_a_failing_apprise_url_fails_without_revealing_its_token(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {"SLACK_TOKEN": SLACK_TOKEN}
    waits: list[float] = []
    with serve(503) as server:
        port = server.url.rsplit(":", 1)[1]
        config = settings(
            apprise_urls=[f"json://user:${{SLACK_TOKEN}}@127.0.0.1:{port}/${{SLACK_TOKEN}}"]
        )
        [_, result] = dispatch.send(Alert("x"), config, env, Delivery(sleep=waits.append))
    assert (result.channel, result.status, result.attempts) == ("apprise:json", "failed", 4)
    assert result.error == "HTTP 503"
    assert waits == [0.5, 1.0, 2.0]
    printed = capsys.readouterr()
    for text in (json.dumps(result.to_dict()), caplog.text, printed.out, printed.err):
        assert SLACK_TOKEN not in text


def test_an_apprise_4xx_is_not_retried() -> None:
    with serve(401) as server:
        config = settings(apprise_urls=[f"json://{server.url.split('//')[1]}/hook"])
        [_, result] = dispatch.send(Alert("x"), config, {}, Delivery(sleep=no_sleep))
    assert (result.status, result.attempts, result.error) == ("failed", 1, "HTTP 401")


def test_an_apprise_url_whose_variable_is_unset_is_skipped() -> None:
    config = settings(apprise_urls=["slack://${SLACK_TOKEN}/#desk"])
    [_, result] = dispatch.send(Alert("x"), config, {}, Delivery(sleep=no_sleep))
    assert (result.channel, result.status, result.reason) == (
        "apprise:slack",
        "skipped",
        "SLACK_TOKEN not set",
    )


def test_apprise_urls_file_must_be_owner_only(tmp_path: Path) -> None:
    with serve(200) as server:
        urls = tmp_path / "apprise.urls"
        urls.write_text(f"# the desk's endpoint\njson://{server.url.split('//')[1]}/secret-path\n")
        urls.chmod(0o644)
        config = settings(apprise_urls_file=str(urls))
        [_, refused] = dispatch.send(Alert("x"), config, {}, Delivery(sleep=no_sleep))
        urls.chmod(0o600)
        [_, sent] = dispatch.send(Alert("x"), config, {}, Delivery(sleep=no_sleep))
    assert refused.status == "failed" and refused.error is not None
    assert "chmod 600" in refused.error and "secret-path" not in refused.error
    assert sent.sent and [r["path"] for r in server.requests] == ["/secret-path"]


def test_mask_secrets_hides_tokens_urls_and_passwords() -> None:
    env = {"BOT_TOKEN": TOKEN, "SLACK_TOKEN": SLACK_TOKEN, "STAGECTL_HMAC_KEY": "k" * 32}
    config = settings(
        webhook_url="https://hooks.example/services/T000/B000/XXXXSECRETXXXX",
        apprise_urls=["slack://${SLACK_TOKEN}/#desk"],
    )
    text = (
        f"bad: bot{TOKEN} {SLACK_TOKEN} key {'k' * 32} "
        "https://hooks.example/services/T000/B000/XXXXSECRETXXXX "
        "mailtos://ops:hunter2pw@mail.example"
    )
    masked = dispatch.mask_secrets(text, config, env)
    for secret in (TOKEN, SLACK_TOKEN, "k" * 32, "XXXXSECRETXXXX", "hunter2pw"):
        assert secret not in masked
    assert re.search(r"mailtos://\*\*\*@mail\.example", masked)


def test_mask_urls_keeps_a_state_urls_host_and_database_but_not_its_password() -> None:
    """A PostgreSQL state URL is masked as ``--state`` messages mask it (the password
    only), not cut to its scheme as an apprise URL is: the error still says which server."""
    line = "postgresql://desk@db:5432/desk: cannot connect to the state database"
    assert mask_urls(line) == line
    masked = mask_urls("postgres://desk:hunter2pw@db.internal/desk?sslmode=require x")
    assert masked == "postgres://desk:***@db.internal/desk?*** x"
    assert mask_urls("postgresql://desk@db/desk?password=hunter2pw") == (
        "postgresql://desk@db/desk?***"
    )
    assert mask_urls("postgresql://u:hunter2pw@db:x/desk") == "postgresql://***"
    assert mask_urls("tgram://123:SECRET/chat") == "tgram://***"
