"""``--html FILE`` on the report commands: the page is written whole or not at all, and
the rest of the contract (one JSON document on stdout, exit codes) is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Run


def test_html_next_to_json_keeps_stdout_one_json_document(run: Run, home: Path) -> None:
    result = run(["walk-forward", "--json", "--html", "wf.html"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "walk-forward"
    page = (home / "wf.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert page.count('class="plotly-graph-div"') == 2  # Sharpe per fold; equity over drawdown
    assert "wrote wf.html" in result.stderr


def test_risk_guard_html_needs_replay(run: Run, home: Path) -> None:
    result = run(["risk-guard", "--html", "guard.html"])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --replay: ")
    assert "--html" in result.stderr
    assert not (home / "guard.html").exists()


def test_an_unwritable_html_path_is_a_one_line_input_error(run: Run, home: Path) -> None:
    (home / "blocker").write_text("a file, not a directory\n")
    result = run(["backtest", "--start", "2026-03-01", "--html", "blocker/bt.html"])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("stagectl: ")]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith("stagectl: blocker/bt.html: cannot write")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".")) == []
