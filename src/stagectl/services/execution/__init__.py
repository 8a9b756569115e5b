"""Services for execution: venue inputs and the router preview (docs/execution.md)."""
