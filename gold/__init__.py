"""Gold: the four answer tables, upserted from silver pieces."""
