"""Services for the strategy's sleeves and trade costs, shared by research, live and the guard."""
