"""stagectl.reports layer (see DESIGN.md)."""
