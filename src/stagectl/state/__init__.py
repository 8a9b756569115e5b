"""stagectl.state layer (see DESIGN.md)."""
