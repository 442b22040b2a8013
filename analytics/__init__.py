"""`hub analytics`: the history topics as Parquet files, and reports over them with DuckDB."""
