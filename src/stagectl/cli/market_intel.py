"""``stagectl market-intel``: the Stage6 Market Intel table (seed 000)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    MarketDataOpt,
    OutOpt,
    cli_context,
    config_option,
    info,
    parse_now,
    print_json,
    print_table,
    publish_envelope,
)

app = typer.Typer(add_completion=False, rich_markup_mode=None)

NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Compute as of this UTC time (ISO-8601) [default: the end of the common data].",
        metavar="TIME",
    ),
]

COLUMNS = (
    ("symbol", "symbol"),
    ("liq drop %", "liquidity_drop_pct"),
    ("spread bps", "spread_bps"),
    ("vol chg %", "volatility_change_pct"),
    ("sentiment", "sentiment"),
    ("funding bps", "funding_latest_bps"),
    ("dispersion bps", "dispersion_bps"),
    ("latency ms", "latency_ms"),
    ("blackout min", "blackout_min"),
    ("ER", "efficiency_ratio"),
    ("return %", "return_pct"),
    ("fresh", "fresh"),
    ("weight", "weight"),
)


@app.command(
    "market-intel",
    epilog="Example: stagectl market-intel --now 2026-05-16T00:00Z --out reports/intel.json",
)
def market_intel(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("core.yaml")] = None,
    data: MarketDataOpt = None,
    now: NowOpt = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Per-symbol Market Intel metrics and the aggregate row.

    Symbols: core.yaml's mandatory symbols (a missing one is an error naming it,
    exit 2) and every other symbol with perp 1h candles in the data. The aggregate
    takes the worst symbol per risk metric; a fresh aggregate weighs 1.15.
    --out publishes the signed report and needs core.yaml's compliance sign-off
    (stagectl verify-thresholds --out reports/compliance-DATE.json
    --signed-off-by NAME): exit 1 without one. Without --out the table or --json
    is a dry look and says on stderr when there is no sign-off.
    """
    from stagectl.services.stage6 import market_intel as service

    home = cli_context(ctx).home
    request = service.MarketIntelRequest(
        config=config, data_dir=data, now=parse_now(now), publish="--out" if out else None
    )
    result = service.run(request, home=home)
    info(f"config: {result.config.describe()}")
    info(result.compliance.describe())
    body = result.body()
    info(f"data: {body['source']}; as of {body['as_of']} ({body['now_source']})")
    for member in body["universe"]:
        if not member["included"]:
            info(
                f"universe (config/data.yaml): {member['symbol']} out: "
                f"{'; '.join(member['reasons_out'])}"
            )
    if out is not None:
        publish_envelope(
            home,
            service.KIND,
            body,
            inputs=result.inputs,
            out=out,
            unsigned=False,
        )
        info(f"wrote {out}")
    if json_output:
        print_json(body)
        return
    _print_rows(body["rows"])


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print_table(
        "Market Intel",
        [title for title, _ in COLUMNS],
        [[_round(row[key]) for _, key in COLUMNS] for row in rows],
    )


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
