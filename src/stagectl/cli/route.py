"""``stagectl route``: preview the smart router's venue and style (docs/execution.md)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer

from stagectl.cli._common import (
    BoundedFloat,
    JsonOpt,
    cli_context,
    fmt_fixed,
    print_json,
    print_lines,
    print_table,
)
from stagectl.cli._values import bundled_symbols
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.services.execution.route import RoutePreview

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl route --symbol BTCUSDT --side buy --notional 25000 --json"


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError(f"not a number: {text!r}", where=option) from None
    if not value.is_finite():
        raise InputError(f"not a finite number: {text!r}", where=option)
    return value


@app.command("route", epilog=EXAMPLE)
def route(
    ctx: typer.Context,
    symbol: Annotated[
        str,
        typer.Option(
            "--symbol", "-s", help="The symbol (BTCUSDT).", autocompletion=bundled_symbols
        ),
    ],
    side: Annotated[str, typer.Option("--side", help="buy or sell.", metavar="buy|sell")],
    notional: Annotated[
        str, typer.Option("--notional", help="The order's notional in USDT.", metavar="USD")
    ],
    venues: Annotated[
        str | None,
        typer.Option("--venues", help="Only these venue names (comma list).", metavar="A,B"),
    ] = None,
    books: Annotated[
        list[str] | None,
        typer.Option(
            "--book",
            help="A recorded book snapshot file as a venue, [NAME=]FILE (repeatable; its "
            "last snapshot) [default: the bundled Binance BTCUSDT snapshot].",
            metavar="FILE",
        ),
    ] = None,
    exchanges: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            help="ccxt venues to ask (network), comma list of [NAME=]CCXT_ID[@URL].",
            metavar="IDS",
        ),
    ] = None,
    persistence: Annotated[
        float,
        typer.Option(
            "--persistence",
            help="The signal's persistence in [0, 1] (TWAP above 0.7).",
            metavar="P",
            click_type=BoundedFloat(0, 1),
        ),
    ] = 0.0,
    avg_volume: Annotated[
        str | None,
        typer.Option(
            "--avg-volume",
            help="Average bar volume in USDT (POV above 10 %) [default: the bundled 1h "
            "candles' last 24 bars].",
            metavar="USD",
        ),
    ] = None,
    urgent: Annotated[
        bool, typer.Option("--urgent", help="An order that must reduce risk now (market).")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Score every venue by seed 001's formula (0.3 spread + 0.2 queue + 0.2 latency +
    0.15 reliability + 0.15 size), choose the best, and the execution style by seed 001's
    rules. Offline on the bundled snapshot unless --book or --exchange name venues.

    Exit 0; 2 on bad input or when no venue lists the symbol; 3 when no venue is
    reachable (an unreachable venue among others is scored out with its reason).
    """
    from stagectl.domain.types import Side
    from stagectl.services.execution import route as service

    if side.lower() not in ("buy", "sell"):
        raise InputError(f"side must be buy or sell, not {side!r}", where="--side")
    names = None
    if venues is not None:
        names = tuple(v.strip() for v in venues.split(",") if v.strip())
        if not names:
            raise InputError("no venue names given", where="--venues")
    request = service.RouteRequest(
        symbol=symbol.upper(),
        side=Side(side.lower()),
        notional=_decimal(notional, "--notional"),
        venues=names,
        books=tuple(books or ()),
        exchanges=exchanges,
        persistence=persistence,
        urgent=urgent,
        avg_bar_volume=None if avg_volume is None else _decimal(avg_volume, "--avg-volume"),
    )
    result = service.run(request, home=cli_context(ctx).home)
    if json_output:
        print_json(service.to_document(result))
        return
    _print_human(result)


def _print_human(result: RoutePreview) -> None:
    rows = []
    for s in result.scores:
        subs = s.sub_scores
        cells = (
            [
                fmt_fixed(v, 3)
                for v in (subs.spread, subs.queue, subs.latency, subs.reliability, subs.size)
            ]
            if subs is not None
            else ["-"] * 5
        )
        rows.append(
            [
                s.venue,
                fmt_fixed(s.score, 3) if s.score is not None else "out",
                *cells,
                "-" if s.spread_bps is None else f"{s.spread_bps:.2f}",
                "-" if s.latency_ms is None else f"{s.latency_ms:.0f}",
                s.excluded or s.source,
            ]
        )
    print_table(
        f"{result.side.value} {result.notional} USDT of {result.symbol}",
        [
            "venue",
            "score",
            "spread",
            "queue",
            "latency",
            "reliab.",
            "size",
            "spread bps",
            "ms",
            "source / reason",
        ],
        rows,
    )
    inputs = result.style_inputs
    print_lines(
        [
            f"chosen venue: {result.chosen}",
            f"style: {result.style.style.value} ({result.style.reason})",
            f"style inputs: spread {inputs.spread_bps:.2f} bps at {result.chosen}, persistence "
            f"{inputs.signal_persistence:.0%}, avg bar volume ${inputs.avg_bar_volume_usd:,.0f} "
            f"({result.avg_bar_volume_source})",
        ]
    )
