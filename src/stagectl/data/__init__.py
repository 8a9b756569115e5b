"""stagectl.data layer (see DESIGN.md)."""
