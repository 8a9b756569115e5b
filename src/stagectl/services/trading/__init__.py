"""Services for the trading state, emergency-close and preflight."""
