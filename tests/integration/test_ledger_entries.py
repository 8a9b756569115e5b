"""The ledger entries write what the request asks for and name it on the result."""

from __future__ import annotations

from pathlib import Path

from stagectl.config.home import Home
from stagectl.data import SAMPLE_DIR
from stagectl.services.ledger import export_windows, importer, regime_analyze

LEDGER = """timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity
2025-01-01T00:00:00Z,1,SOLUSDT,buy,100,2,0.02,USDT,taker
2025-01-01T01:10:00Z,2,SOLUSDT,sell,120,1,-0.03,USDT,maker
"""


def test_export_windows_writes_out_and_names_it(home: Path, tmp_path: Path) -> None:
    fills = tmp_path / "fills.csv"
    fills.write_text(LEDGER)
    importer.run(importer.ImportRequest(path=fills), home=Home.resolve(home))
    out = tmp_path / "windows.csv"
    request = export_windows.ExportRequest(window_s=3600, out=out)
    result = export_windows.run(request, home=Home.resolve(home))
    assert result.written == out
    assert out.read_text() == result.csv_text()
    assert len(result.table) == 2


def test_export_windows_without_out_writes_nothing(home: Path, tmp_path: Path) -> None:
    fills = tmp_path / "fills.csv"
    fills.write_text(LEDGER)
    importer.run(importer.ImportRequest(path=fills), home=Home.resolve(home))
    result = export_windows.run(
        export_windows.ExportRequest(window_s=3600), home=Home.resolve(home)
    )
    assert result.written is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fills.csv", "home"]


def test_regime_analyze_lists_the_export_files_and_the_page(home: Path, tmp_path: Path) -> None:
    candles = SAMPLE_DIR / "binance_perp_SOLUSDT_1h_ohlcv.csv.gz"
    request = regime_analyze.RegimeRequest(
        symbol="SOLUSDT", candles=(candles,), export_dir=tmp_path / "out", html=tmp_path / "r.html"
    )
    result = regime_analyze.run(request, home=Home.resolve(home))
    assert result.exported == (tmp_path / "out" / "regimes.csv",)
    assert result.html == tmp_path / "r.html"
    assert all(path.is_file() for path in (*result.exported, result.html))
