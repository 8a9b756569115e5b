"""Services for run-live: the trading loop (paper and live), its artifacts and their analysis."""
