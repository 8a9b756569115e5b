"""Services for the fill ledger: import, fetch, windows, exports and regime analysis."""
