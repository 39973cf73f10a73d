"""Read models: plain dicts/DataFrames for the CLI and dashboard, never ORM objects."""
