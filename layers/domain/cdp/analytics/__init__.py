"""Customer analytics over the warehouse export: cohort retention, repeat-purchase curves, lifecycle flows and what
each message channel or campaign acquired, activated, retained, converted and lost.

- `models`: the period a report covers and the rows each report returns, with every definition in the field
  descriptions (what a marketer reads);
- `sql`: the SQL of each report in two dialects, DuckDB (locally, over the Parquet `cdp export warehouse` copies)
  and Athena (Trino, over the Glue tables). Pure string generation: no database driver, so it ships in the Lambda
  layer; `cdp_local.analytics` runs it with DuckDB.
"""
