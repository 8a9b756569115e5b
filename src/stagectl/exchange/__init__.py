"""stagectl.exchange layer (see DESIGN.md)."""
