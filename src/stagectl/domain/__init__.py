"""stagectl.domain layer (see DESIGN.md)."""
