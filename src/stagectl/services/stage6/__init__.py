"""Services for Stage6: threshold audit, Market Intel, Portfolio Governor, Stress Lab."""
