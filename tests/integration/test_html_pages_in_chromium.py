"""Every ``--html`` page, opened from disk in headless Chromium, draws its charts.

The pages are written by ``scripts/screenshots.py``'s ``build_pages`` (each command on
the bundled data in a fresh home). Chromium is Debian's (``.ci/run`` installs it where
missing), driven by playwright; the test skips, saying so, only when no Chromium is
installed. Any request that is not a local file is refused and fails the test.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, isolate_home


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "screenshots", REPO_ROOT / "scripts" / "screenshots.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()
CHROMIUM = SCRIPT.chromium_path()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium installed (apt-get install chromium; .ci/run does it where it can)",
    ),
    pytest.mark.slow,
]
CHARTED = ("backtest", "risk-guard-replay", "walk-forward", "cpcv", "regime-analyze", "paper-gate")

# Per chart: its plotly div, the SVG paths its traces drew (line, fill, bar, marker) and
# heat-map images, and whether its x axis is a date axis.
PROBE = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => ({
  id: plot.id,
  svgs: plot.querySelectorAll('.main-svg').length,
  drawn: Array.from(plot.querySelectorAll(
      '.scatterlayer path.js-line, .scatterlayer path.js-fill, .scatterlayer path.point, '
      + '.barlayer path, .heatmaplayer image'))
    .filter(e => e.tagName === 'image' || (e.getAttribute('d') || '').length > 8).length,
  dateAxis: plot.layout.xaxis.type === 'date',
  ticks: Array.from(plot.querySelectorAll('.xaxislayer-above text')).map(t => t.textContent),
}))
"""
YEAR_OR_MONTH = ("2024", "2025", "2026", "Jan", "Apr", "Jul", "Oct")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        isolate_home(root, patch)
        yield SCRIPT.build_pages(root, tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    """The page loaded from disk; the problems seen: console errors, page errors and any
    request for something other than a local file (refused)."""
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on(
        "console", lambda m: problems.append(f"console {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error {e}"))

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith("file://"):
            request_route.continue_()
        else:
            problems.append(f"network request {url}")
            request_route.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    return page, problems


@pytest.mark.parametrize("name", CHARTED)
def test_each_chart_of_the_page_draws_in_chromium(
    browser: Any, pages: dict[str, Path], name: str
) -> None:
    html = pages[name].read_text(encoding="utf-8")
    expected = html.count('class="plotly-graph-div"')
    assert expected >= 1
    assert html.count("<script") - html.count("<script type") >= 1
    page, problems = _open(browser, pages[name])
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}"
    )
    charts = page.evaluate(PROBE)
    page.close()

    assert problems == []
    assert len(charts) == expected
    for chart in charts:
        assert chart["svgs"] >= 1, chart["id"]
        assert chart["drawn"] >= 1, chart["id"]
    dated = [c for c in charts if c["dateAxis"]]
    assert dated, "no chart with a date axis"
    for chart in dated:
        assert any(any(k in t for k in YEAR_OR_MONTH) for t in chart["ticks"]), chart


def test_the_stress_lab_page_keeps_its_heat_table_without_scripts(
    browser: Any, pages: dict[str, Path]
) -> None:
    html = pages["stress-lab"].read_text(encoding="utf-8")
    assert "<script" not in html
    page, problems = _open(browser, pages["stress-lab"])
    cells = page.evaluate("document.querySelectorAll('td.ok, td.warn, td.breach').length")
    bars = page.evaluate("document.querySelectorAll('svg rect').length")
    page.close()

    assert problems == []
    assert cells >= 8
    assert bars >= 2  # the portfolio impact bars of the two-position book


def test_a_page_embeds_plotly_once_and_fetches_nothing(pages: dict[str, Path]) -> None:
    html = pages["backtest"].read_text(encoding="utf-8")
    assert html.count("plotly.js v") <= 2  # the bundle's banner, once
    assert '<script src="' not in html
    assert "<link" not in html
