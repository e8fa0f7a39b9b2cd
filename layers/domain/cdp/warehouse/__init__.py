"""The brand's warehouse: profiles, tags and events as Parquet under `warehouse/` in the data bucket, catalogued in
Glue (with partition projection) so Athena reads them with no crawler.

- `schema`: the three tables (columns in DuckDB and Glue types, partition keys) and the key layout; CDK builds the
  Glue tables from it.
- `rows`: the pure row shaping: identifiers only as SHA-256 hashes, no names, no free text, no raw phone or e-mail.
- `service`: one run: which days to write, the snapshots replaced, erasure requests applied, the watermark moved.
- `erasure`: the request an erasure leaves for the next run (`cdp.privacy` writes it).
- `aws` (DynamoDB scan, S3) and `parquet` (DuckDB) are the adapters.
"""
