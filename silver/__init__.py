"""Silver: validated readings, consumption pieces with the tariff, quarantine."""
