"""Where a file import keeps its objects in the data bucket, all under `topology.IMPORTS_PREFIX`.

imports/incoming/{brand_id}/{kind}/{file}     the dropped file: it is the raw record, never moved or copied
imports/history/{brand_id}/{file}.jsonl       a history import's file (cdp.app.history_import), kept the same way
imports/reports/{import_id}.json              the final report (totals, where the rejects are)
imports/reports/{import_id}/plan.json         the plan (byte range of every chunk)
imports/reports/{import_id}/chunks/{n}.json   one chunk's counts and rejected rows
imports/rejects/{import_id}/rejects.csv       every rejected row: row number, field, reason, the raw row
"""

from __future__ import annotations

from cdp import topology

INCOMING_PREFIX = f"{topology.IMPORTS_PREFIX}incoming/"
HISTORY_PREFIX = f"{topology.IMPORTS_PREFIX}history/"
REPORTS_PREFIX = f"{topology.IMPORTS_PREFIX}reports/"
REJECTS_PREFIX = f"{topology.IMPORTS_PREFIX}rejects/"


def incoming_key(brand_id: str, kind: str, file_name: str) -> str:
    return f"{INCOMING_PREFIX}{brand_id}/{kind}/{file_name}"


def report_key(import_id: str) -> str:
    return f"{REPORTS_PREFIX}{import_id}.json"


def plan_key(import_id: str) -> str:
    return f"{REPORTS_PREFIX}{import_id}/plan.json"


def chunk_key(import_id: str, index: int) -> str:
    return f"{REPORTS_PREFIX}{import_id}/chunks/{index:05d}.json"


def rejects_key(import_id: str) -> str:
    return f"{REJECTS_PREFIX}{import_id}/rejects.csv"
