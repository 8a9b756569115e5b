"""Services for research: backtest, walk-forward, CPCV, audit, consensus, shadow."""
