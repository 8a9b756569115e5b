"""Services for the bundled and fetched market data: info, check, fetch."""
