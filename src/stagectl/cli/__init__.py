"""stagectl.cli layer (see DESIGN.md)."""
