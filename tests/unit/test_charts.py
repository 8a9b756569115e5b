"""The page helpers: downsampling keeps what a reader looks for, pages are whole files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagectl.errors import InputError
from stagectl.reports.charts import Page, downsample, table, write_page
from stagectl.services.pages.ledger import regime_spans


def test_a_short_series_is_kept_whole() -> None:
    x, y = np.arange(10), np.arange(10.0)
    kept_x, kept_y = downsample(x, y, max_points=10)
    assert kept_x.tolist() == x.tolist()
    assert kept_y.tolist() == y.tolist()


def test_a_long_series_keeps_its_extremes_ends_and_order() -> None:
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=100_000))
    x = np.arange(len(y))
    kept_x, kept_y = downsample(x, y, max_points=1_000)
    assert len(kept_x) <= 1_002
    assert kept_x[0] == 0 and kept_x[-1] == len(y) - 1
    assert np.all(np.diff(kept_x) > 0)
    assert kept_y.min() == y.min() and kept_y.max() == y.max()
    assert np.array_equal(kept_y, y[kept_x])


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), min_size=1, max_size=3_000),
    st.integers(min_value=2, max_value=500),
)
def test_downsampling_never_exceeds_its_budget_and_keeps_real_points(
    values: list[float], budget: int
) -> None:
    y = np.asarray(values, dtype=float)
    x = np.arange(len(y))
    kept_x, kept_y = downsample(x, y, max_points=budget)
    if len(y) <= budget:
        assert len(kept_x) == len(y)
    else:
        assert len(kept_x) <= budget + 2
    assert np.array_equal(kept_y, y[kept_x], equal_nan=True)
    finite = y[np.isfinite(y)]
    if len(y) > budget and len(finite):
        assert np.nanmin(kept_y) == finite.min() and np.nanmax(kept_y) == finite.max()


def test_regime_runs_become_one_span_each() -> None:
    times = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    labels = ["TREND", "TREND", "PANIC", "TREND", "TREND", "TREND"]
    spans = regime_spans(times, times + pd.Timedelta(hours=1), labels)
    hour = pd.Timedelta(hours=1)
    assert spans == {
        "TREND": [(times[0], times[2]), (times[3], times[5] + hour)],
        "PANIC": [(times[2], times[3])],
    }


def test_table_text_is_escaped() -> None:
    html = table(["name"], [["<script>alert(1)</script>"]])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_a_page_without_charts_carries_no_script(tmp_path: Path) -> None:
    page = Page("t <b>", meta="m").heading("h").html(table(["a"], [[1.5]]))
    path = write_page(tmp_path / "p.html", page)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>\n")
    assert "<script" not in text and "t &lt;b&gt;" in text


def test_a_page_that_cannot_be_written_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError):
        write_page(blocker / "p.html", Page("t"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_stress_lab_page_loads_neither_plotly_nor_numpy() -> None:
    """The chart-free page sits on reports.page (standard library only), not on charts."""
    probe = (
        "import sys\n"
        "from stagectl.reports.html import stress_lab_page\n"
        "from stagectl.reports.page import write_page\n"
        "stress_lab_page({'body': {}}).render()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'plotly', 'numpy', 'pandas'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
