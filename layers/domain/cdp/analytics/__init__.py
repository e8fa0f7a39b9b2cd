"""Customer analytics over the warehouse export: cohort retention, repeat-purchase curves, lifecycle flows and what
each message channel or campaign acquired, activated, retained, converted and lost.

- `models`: the period a report covers and the rows each report returns, with every definition in the field
  descriptions (what a marketer reads);
- `sql`: the SQL of each report in two dialects, DuckDB (locally, over the Parquet `cdp export warehouse` copies)
  and Athena (Trino, over the Glue tables). Pure string generation: no database driver, so it ships in the Lambda
  layer; `cdp_local.analytics` runs it with DuckDB;
- `reports`: a report as the API asks for it (`ReportRequest`), its rows out of an engine's table, the answers
  (`ReportResult`, `QueryPending`) and where each query's files live (`analytics-results/{brand}/{report}/`);
- `ports`: `QueryEngine`, with its adapters `athena` (Athena in the stack's workgroup) and `duckdb` (DuckDB over the
  brand's Parquet in the data bucket; it needs the warehouse layer, so only the analytics API imports it);
- `service`: `ReportQueries`: a query started with its request stored, waited for up to a budget, polled by id
  under its brand and report only;
- `cache`: each succeeded query's table kept per (request, engine, query, the brand's warehouse export run), so the
  same report over the same export is answered without running it again.
"""
