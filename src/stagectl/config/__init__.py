"""stagectl.config layer (see DESIGN.md)."""
