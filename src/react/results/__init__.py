"""Results: DuckDB tables (SQL in sql/), plots."""
