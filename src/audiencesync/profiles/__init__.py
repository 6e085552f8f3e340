"""The profile store: datasets imported into Parquet (or linked tables), read by DuckDB."""
