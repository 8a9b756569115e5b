"""Write every ``--html`` report page from the bundled data, and a PNG screenshot of each.

    python scripts/screenshots.py OUT_DIR

In a temporary home (a throwaway signing key, the packaged configs, the bundled sample
data) it runs each command with ``--html OUT_DIR/<name>.html``: backtest (with the
circuit breakers), risk-guard --replay, walk-forward, cpcv, regime-analyze (the bundled
SOLUSDT candles and PnL windows made from them: a maker earning a spread and losing to
the price's move), paper-gate (after a run-live paper replay of the last 30 days) and
stress-lab (after the compliance sign-off, with a two-position book). Then headless
Chromium (Debian's ``/usr/bin/chromium``, driven by playwright; ``STAGECTL_CHROMIUM``
names another) opens each page from disk and saves ``OUT_DIR/<name>.png``. The paths are
printed, one a line. The screenshots are not committed.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "src" / "stagectl" / "data" / "sample"
SOL_CANDLES = SAMPLE / "binance_perp_SOLUSDT_1h_ohlcv.csv.gz"

Invoke = Callable[[list[str]], int]


def chromium_path() -> str | None:
    """Chromium to drive: ``STAGECTL_CHROMIUM``, else chromium on the PATH."""
    named = os.environ.get("STAGECTL_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def _home(root: Path) -> Iterator[None]:
    """``root`` as the stagectl home with a throwaway signing key, for the duration."""
    saved = {k: os.environ.get(k) for k in ("STAGECTL_HOME", "STAGECTL_HMAC_KEY", "NO_COLOR")}
    os.environ.update(
        STAGECTL_HOME=str(root), STAGECTL_HMAC_KEY=secrets.token_hex(32), NO_COLOR="1"
    )
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _quiet_main(args: list[str]) -> int:
    from stagectl.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(args)


def write_windows(path: Path) -> Path:
    """PnL windows (the ``metrics export-windows`` columns), one per 4 bundled SOLUSDT
    hours: a maker earning 2 USDT of spread and losing 1.5 USDT per 1 % the price moved,
    with an inventory that leans against the move."""
    rows = ["window_start,window_end,realized_fifo_quote,inventory_delta_base"]
    with gzip.open(SOL_CANDLES, "rt") as source:
        header = source.readline().strip().split(",")
        at, open_ = header.index("timestamp"), header.index("open")
        lines = [line.strip().split(",") for line in source if line.strip()]
    for first, following in zip(lines[::4], lines[4::4], strict=False):
        move_pct = (float(following[open_]) / float(first[open_]) - 1.0) * 100.0
        realized = 2.0 - 1.5 * abs(move_pct)
        lean = -0.1 if move_pct > 0 else 0.1
        rows.append(f"{first[at]},{following[at]},{realized:.6f},{lean}")
    path.write_text("\n".join(rows) + "\n")
    return path


def build_pages(home: Path, out_dir: Path, invoke: Invoke = _quiet_main) -> dict[str, Path]:
    """Every report page written into ``out_dir`` from a fresh home at ``home``; raises
    ``RuntimeError`` naming the command when one exits with an unexpected code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {
        name: out_dir / f"{name}.html"
        for name in (
            "backtest",
            "risk-guard-replay",
            "walk-forward",
            "cpcv",
            "regime-analyze",
            "paper-gate",
            "stress-lab",
        )
    }
    windows = write_windows(home / "windows.csv")
    book = home / "book.csv"
    book.write_text("symbol,qty,entry_price\nBTCUSDT,0.5,80000\nSOLUSDT,-100,150\n")
    steps: list[tuple[list[str], tuple[int, ...]]] = [
        (["init"], (0,)),
        (["backtest", "--breakers", "--html", str(pages["backtest"])], (0,)),
        (["risk-guard", "--replay", "--html", str(pages["risk-guard-replay"])], (0,)),
        (["walk-forward", "--html", str(pages["walk-forward"])], (0,)),
        (["cpcv", "--html", str(pages["cpcv"])], (0,)),
        (
            ["regime-analyze", "--candles", str(SOL_CANDLES), "--windows", str(windows),
             "--html", str(pages["regime-analyze"])],
            (0,),
        ),
        (["run-live"], (0,)),
        (["paper-gate", "--html", str(pages["paper-gate"])], (0, 1)),
        (["verify-thresholds", "--out", str(home / "reports" / "compliance.json"),
          "--signed-off-by", "desk"], (0,)),
        (["stress-lab", "--positions", str(book), "--html", str(pages["stress-lab"])], (0, 1)),
    ]  # fmt: skip
    with _home(home):
        for args, expected in steps:
            code = invoke(args)
            if code not in expected:
                raise RuntimeError(f"stagectl {' '.join(args)} exited {code}")
    return pages


def screenshot(pages: dict[str, Path], out_dir: Path, chromium: str) -> list[Path]:
    """A full-page PNG of each page, opened from disk in headless Chromium."""
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, path in pages.items():
            page.goto(path.resolve().as_uri())
            if "<script" in path.read_text(encoding="utf-8"):
                page.wait_for_selector(".main-svg")
            shot = out_dir / f"{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            shots.append(shot)
        browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="where the pages and PNGs go (created)")
    args = parser.parse_args(argv)
    chromium = chromium_path()
    if chromium is None:
        print("no chromium: apt-get install chromium (or set STAGECTL_CHROMIUM)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="stagectl-screens-") as temp:
        pages = build_pages(Path(temp), args.out_dir.resolve())
        for shot in screenshot(pages, args.out_dir.resolve(), chromium):
            print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
