"""Services for the risk guard: live decisions, replay, weekly review and the paper gate."""
