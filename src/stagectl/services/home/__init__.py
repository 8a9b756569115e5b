"""Services for the home: init and state info."""
