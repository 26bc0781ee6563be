"""The read side: the lake through DuckDB and delta-rs (views, SQL, history, time
travel), live gold for the page, silver's validation counts and the report."""
