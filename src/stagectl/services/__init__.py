"""stagectl.services layer (see DESIGN.md)."""
