"""stagectl.notify layer (see DESIGN.md)."""
