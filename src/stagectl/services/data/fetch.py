"""``stagectl data fetch``: download OHLCV (and perp funding) into a resumable local cache.

The cache lives in ``HOME/data/<exchange>/`` under the simple names the ``--data DIR``
loaders read (``ETHUSDT_1h.csv.gz`` perp candles, ``ETHUSDT_spot_1h.csv.gz`` spot
candles, ``ETHUSDT_funding.csv.gz`` perp funding). A second run reads the cache
through the same loaders and asks the exchange only for bars after the last cached
one (and before the first, when ``--since`` reaches further back). The bar still in
progress at the exchange's server time is never cached. Every write is atomic.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.exchange.retry import RetryPolicy

OHLCV_PAGE = 1000
FUNDING_PAGE = 1000

Progress = Callable[[str, int, int], None]  # (kind, done_ms, total_ms)
Page = tuple[list[tuple[int, tuple[float, ...]]], bool]  # rows, and whether it was the last page


@dataclass(frozen=True)
class DataFetchRequest:
    """``--exchange``, ``--symbol``, ``--timeframe``, ``--since``/``--until`` (parsed),
    ``--base-url``."""

    exchange_id: str
    symbol: str
    timeframe: str
    since: datetime
    until: datetime | None = None
    base_url: str | None = None
    timeout_ms: int = 10_000


@dataclass
class CachedSeries:
    """One cache file after the run."""

    kind: str
    path: Path
    rows: int
    new_rows: int
    first: datetime | None
    last: datetime | None


@dataclass
class DataFetchResult:
    exchange: str
    symbol: str
    market: str
    timeframe: str
    server_time: datetime
    requests: int
    series: list[CachedSeries] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_dir(home: Home, exchange_id: str) -> Path:
    """Where `data fetch` caches an exchange's series: HOME/data/<exchange>/."""
    return home.root / "data" / exchange_id


def run(
    request: DataFetchRequest,
    *,
    home: Home,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
) -> DataFetchResult:
    """Fetch what the cache lacks between ``since`` and min(``until``, server time)."""
    from stagectl.exchange.ccxt_broker import CcxtMarketData, CcxtSession, make_exchange
    from stagectl.exchange.retry import RetryPolicy

    exchange = make_exchange(
        request.exchange_id, base_url=request.base_url, timeout_ms=request.timeout_ms
    )
    session = CcxtSession(
        exchange, policy=policy or RetryPolicy(max_attempts=3, base_backoff_s=0.25)
    )
    data = CcxtMarketData(session)
    market = data.market(request.symbol)
    kind = "perp" if market.get("swap") else "spot" if market.get("spot") else None
    if kind is None:
        raise InputError(
            f"{market['symbol']} is neither a perpetual nor a spot market; "
            "only those can be cached",
            where="--symbol",
        )
    symbol_id = str(market["id"])
    server_now = data.server_time()
    now_ms = _ms(server_now)
    end_ms = min(_ms(request.until), now_ms) if request.until else now_ms
    tf_ms = data.timeframe_ms(request.timeframe)
    directory = cache_dir(home, request.exchange_id)
    result = DataFetchResult(request.exchange_id, symbol_id, kind, request.timeframe, server_now, 0)

    suffix = f"_{request.timeframe}" if kind == "perp" else f"_spot_{request.timeframe}"
    candles = _Cache(
        directory / f"{symbol_id}{suffix}.csv.gz", ("open", "high", "low", "close", "volume")
    )
    candles.load(lambda: _load_candles(symbol_id, request.timeframe, directory, kind))

    def candle_page(since_ms: int, until_ms: int) -> Page:
        rows = data.ohlcv_page(symbol_id, request.timeframe, since_ms, until_ms, OHLCV_PAGE)
        final = [  # the bar still in progress at the server's time is not final
            (int(r[0]), tuple(float(v) for v in r[1:6]))
            for r in rows
            if int(r[0]) + tf_ms <= now_ms
        ]
        return final, len(rows) < OHLCV_PAGE

    candles.fill(_ms(request.since), end_ms, candle_page, _reporter(progress, "ohlcv"))
    result.series.append(candles.save())

    if kind == "perp":
        funding = _Cache(directory / f"{symbol_id}_funding.csv.gz", ("funding_rate",))
        funding.load(lambda: _load_funding(symbol_id, directory))

        def funding_page(since_ms: int, until_ms: int) -> Page:
            rows = data.funding_page(symbol_id, since_ms, until_ms, FUNDING_PAGE)
            return [(ts, (rate,)) for ts, rate in rows], len(rows) < FUNDING_PAGE

        funding.fill(_ms(request.since), end_ms, funding_page, _reporter(progress, "funding"))
        result.series.append(funding.save())
    result.requests = session.requests
    return result


def _reporter(progress: Progress | None, kind: str) -> Progress | None:
    if progress is None:
        return None
    return lambda _kind, done, total: progress(kind, done, total)


class _Cache:
    """Rows keyed by epoch ms, read from and written to one CSV.gz file."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self.rows: dict[int, tuple[float, ...]] = {}
        self.new_rows = 0

    def load(self, reader: Callable[[], Any]) -> None:
        if not self.path.exists():
            return
        frame = reader()
        stamps = frame.index.as_unit("ms").asi8
        values = frame.to_numpy(dtype=float) if frame.ndim == 2 else frame.to_numpy()[:, None]
        self.rows = {
            int(ts): tuple(float(v) for v in row) for ts, row in zip(stamps, values, strict=True)
        }

    def fill(
        self,
        since_ms: int,
        end_ms: int,
        page: Callable[[int, int], Page],
        progress: Progress | None,
    ) -> None:
        """Fetch [since, first cached) and (last cached, end]: only what is missing."""
        ranges = [(since_ms, end_ms)]
        if self.rows:
            first, last = min(self.rows), max(self.rows)
            ranges = [(since_ms, first - 1)] if since_ms < first else []
            ranges.append((max(since_ms, last + 1), end_ms))
        for start, stop in ranges:
            self._fetch_range(start, stop, page, progress)

    def _fetch_range(
        self,
        start: int,
        stop: int,
        page: Callable[[int, int], Page],
        progress: Progress | None,
    ) -> None:
        cursor = start
        while cursor <= stop:
            fetched, last_page = page(cursor, stop)
            rows = [(ts, v) for ts, v in fetched if start <= ts <= stop]
            if not rows:
                break
            for ts, values in rows:
                if ts not in self.rows:
                    self.new_rows += 1
                self.rows[ts] = values
            cursor = rows[-1][0] + 1
            if progress is not None:
                progress("", min(cursor, stop) - start, max(stop - start, 1))
            if last_page:
                break

    def save(self) -> CachedSeries:
        from stagectl.reports import write_atomic

        if self.new_rows:
            write_atomic(self.path, self._encode())
        stamps = sorted(self.rows)
        return CachedSeries(
            kind="funding" if self.columns == ("funding_rate",) else "ohlcv",
            path=self.path,
            rows=len(stamps),
            new_rows=self.new_rows,
            first=_dt(stamps[0]) if stamps else None,
            last=_dt(stamps[-1]) if stamps else None,
        )

    def _encode(self) -> bytes:
        text = io.StringIO()
        text.write(",".join(("timestamp", *self.columns)) + "\n")
        for ts in sorted(self.rows):
            stamp = _iso(ts)
            text.write(stamp + "," + ",".join(repr(v) for v in self.rows[ts]) + "\n")
        return gzip.compress(text.getvalue().encode(), mtime=0)


def _load_candles(symbol: str, timeframe: str, directory: Path, market: str) -> Any:
    from stagectl.data import load_candles

    return load_candles(symbol, timeframe, data_dir=directory, market=market)


def _load_funding(symbol: str, directory: Path) -> Any:
    from stagectl.data import load_funding

    return load_funding(symbol, data_dir=directory)


def _ms(when: datetime) -> int:
    stamp = when if when.tzinfo else when.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def _iso(ms: int) -> str:
    """ISO-8601 UTC; milliseconds only when the time has them (funding times may)."""
    text = (
        _dt(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        if ms % 1000
        else _dt(ms).strftime("%Y-%m-%dT%H:%M:%S")
    )
    return text + "Z"


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
