"""Bulk identity resolution for history imports: millions of identifier links resolved offline in one pass.

The result is the one `graph.partition` (the reference) defines, computed with numpy + scipy instead of Python sets:
blocked values link nothing, only allowed type pairs link, hubs per `IdentityRules.is_hub`, manual quarantine and
disabled edges, then the connected components of what is left. Every person gets a stable id derived from its
smallest identifier key, so re-running an import gives the same ids.

numpy and scipy are imported inside the functions: this package ships to Lambda, where only the ML layer has them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
import uuid
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations, compress, count, repeat
from operator import getitem, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from cdp.errors import InvalidInputError
from cdp.identifiers.link_rules import DEFAULT_RULES, IdentityRules
from cdp.identifiers.model import SCOPED_TYPES, Identifier, IdentifierType
from cdp.shared.csv_safe import SafeWriter

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Codes = npt.NDArray[np.int64]
    Mask = npt.NDArray[np.bool_]
    Objects = npt.NDArray[np.object_]

# Namespace of bulk person ids: uuid5(BULK_PERSON_NAMESPACE, f"{namespace}#{smallest identifier key}").hex
BULK_PERSON_NAMESPACE = uuid.UUID("3b7d52a0-8c1e-4f6a-9d2b-5e0f7a4c1d93")
MAX_REPORTED_PROBLEMS = 1000
LinkFormat = Literal["csv", "parquet", "jsonl"]
KeyOrError = tuple[str | None, str | None]  # (normalized key, None) or (None, why not)

_TYPES = tuple(IdentifierType)
_TYPE_INDEX = {t.value: i for i, t in enumerate(_TYPES)}
_UNLIMITED = 1_000_000  # what IdentityRules uses for a type without a limit
_PREFIXES = tuple(f"{t.value}:" for t in _TYPES)
_REVERSED = itemgetter(slice(None, None, -1))
_TYPE_BITS = max(1, (len(_TYPES) - 1).bit_length())  # a type index fits in this many low bits
_ALPHABETICAL = [sorted(t.value for t in _TYPES).index(t.value) for t in _TYPES]  # the type's place in key order


# ---- reports ------------------------------------------------------------------------------------------------------


class InputProblem(BaseModel):
    """One rejected input row or identifier, with where it was (1-based line; row number for Parquet)."""

    model_config = ConfigDict(frozen=True)

    line: int | None
    field: str | None = None
    value: str | None = None
    message: str


@dataclass
class ProblemLog:
    """Counts every problem and keeps the first `keep` of them, so a bad 10M-line file cannot fill the memory."""

    keep: int = MAX_REPORTED_PROBLEMS
    count: int = 0
    examples: list[InputProblem] = field(default_factory=list)

    def add(self, line: int | None, message: str, field_name: str | None = None, value: object = None) -> None:
        self.count += 1
        if len(self.examples) < self.keep:
            shown = None if value is None else str(value)[:200]
            self.examples.append(InputProblem(line=line, field=field_name, value=shown, message=message))


class BulkSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    links: int  # input pairs (links, or the identifier pairs of events)
    nodes: int  # distinct usable identifiers
    edges: int  # distinct allowed (low, high) edges
    hubs: int
    persons: int
    persons_over_limit: int
    blocked: int  # distinct blocked identifiers seen (they link nothing)
    rejected: int  # input rows or identifiers rejected as invalid (see `problems`)
    seconds: float
    phases: dict[str, float]  # seconds per step: where a slow import spends its time


@dataclass(frozen=True)
class BulkResolution:
    """Per identifier its person (index into `person_ids`, -1 for a hub) and hub flag; per person its id.

    `keys` are the usable identifiers in order of first appearance in the input; `over_limit` maps a person index
    to `IdentityRules.over_limit` of its identifiers, for the persons that hold more of a type than allowed.
    """

    keys: Objects
    person: Codes
    hub: Mask
    person_ids: list[str]
    min_keys: Objects
    over_limit: dict[int, list[str]]
    summary: BulkSummary
    problems: list[InputProblem]

    def persons(self) -> list[frozenset[str]]:
        """Identifier sets, one per person, in person-index order (meant for small results: tests, spot checks)."""
        groups: list[set[str]] = [set() for _ in self.person_ids]
        for key, index in zip(self.keys.tolist(), self.person.tolist(), strict=True):
            if index >= 0:
                groups[index].add(key)
        return [frozenset(g) for g in groups]

    def hubs(self) -> set[str]:
        return set(self.keys[self.hub].tolist())

    def rows(self) -> Iterator[tuple[str, str | None, bool]]:
        """(identifier, person_id or None for a hub, hub) per identifier."""
        ids = self.person_ids
        for key, index, hub in zip(self.keys.tolist(), self.person.tolist(), self.hub.tolist(), strict=True):
            yield key, (ids[index] if index >= 0 else None), hub


@dataclass
class _Clock:
    laps: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    last: float = 0.0

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - (self.last or self.started), 3)
        self.last = now


def person_id_for(namespace: str, min_key: str) -> str:
    """The person id of a component whose smallest identifier key is `min_key`."""
    return uuid.uuid5(BULK_PERSON_NAMESPACE, f"{namespace}#{min_key}").hex


# ---- resolution ---------------------------------------------------------------------------------------------------


def resolve_links(
    a: Sequence[str],
    b: Sequence[str],
    *,
    namespace: str,
    rules: IdentityRules = DEFAULT_RULES,
    quarantined: Iterable[str] = (),
    disabled: Iterable[tuple[str, str]] = (),
    singles: Sequence[str] = (),
    lines: Sequence[int] | None = None,
    single_lines: Sequence[int] | None = None,
    problems: ProblemLog | None = None,
) -> BulkResolution:
    """Persons and hubs from identifier links: each (a[i], b[i]) is what an event with those two keys would link.

    `singles` are identifiers seen alone (they become persons of their own unless something links them). A link or
    single with a malformed key is rejected as a whole, like the ingest API rejects an event, and reported by its
    line (`lines[i]`, else its 1-based position).
    """
    import numpy as np

    clock = _Clock()
    log = problems if problems is not None else ProblemLog()
    if len(a) != len(b):
        raise InvalidInputError(f"links need as many a as b keys, got {len(a)} and {len(b)}")
    m = len(a)
    table = _KeyTable.build(_occurrences(a, b, singles), rules, clock)
    ca, cb, cs = table.codes[:m], table.codes[m : 2 * m], table.codes[2 * m :]

    bad_link = ~table.valid[ca] | ~table.valid[cb]
    bad_single = ~table.valid[cs]
    _report_invalid(log, table, (("a", ca), ("b", cb)), bad_link, lines)
    _report_invalid(log, table, (("identifier", cs),), bad_single, single_lines)
    ca, cb, cs = ca[~bad_link], cb[~bad_link], cs[~bad_single]

    usable = table.valid & ~table.blocked
    seen = np.zeros(table.size, dtype=bool)
    for codes in (ca, cb, cs):
        seen[codes] = True
    node = seen & usable
    low, high = _edges(table, rules, ca, cb, usable)
    clock.lap("edges")
    hub = _hubs(table, rules, low, high) & node
    hub[_present(table.find(quarantined))] = True
    hub &= node
    clock.lap("hubs")
    person, n_persons = _components(table, low, high, hub, node, disabled)
    clock.lap("components")
    return _result(table, rules, namespace, node, hub, person, n_persons, m + len(singles), len(low), log, clock)


def resolve_events(
    events: Iterable[Iterable[str]],
    *,
    namespace: str,
    rules: IdentityRules = DEFAULT_RULES,
    quarantined: Iterable[str] = (),
    disabled: Iterable[tuple[str, str]] = (),
    lines: Sequence[int] | None = None,
    problems: ProblemLog | None = None,
) -> BulkResolution:
    """Persons and hubs from the identifier keys of each event (the input `graph.partition` takes)."""
    log = problems if problems is not None else ProblemLog()
    a: list[str] = []
    b: list[str] = []
    singles: list[str] = []
    a_lines, s_lines = array("q"), array("q")
    check = lru_cache(maxsize=1 << 20)(key_error)  # keys repeat across events
    for position, keys in enumerate(events):
        line = lines[position] if lines is not None else position + 1
        unique = list(dict.fromkeys(keys))
        errors = [(i, key, error) for i, key in enumerate(unique) if (error := check(key))]
        for i, key, error in errors:  # the event is rejected whole, as the ingest API would
            log.add(line, error, f"identifiers.{i}", key)
        if errors:
            continue
        if len(unique) == 1:
            singles.append(unique[0])
            s_lines.append(line)
        for x, y in combinations(unique, 2):  # every pair; the rules decide which link
            a.append(x)
            b.append(y)
            a_lines.append(line)
    return resolve_links(
        a,
        b,
        namespace=namespace,
        rules=rules,
        quarantined=quarantined,
        disabled=disabled,
        singles=singles,
        lines=a_lines,
        single_lines=s_lines,
        problems=log,
    )


@dataclass(frozen=True)
class _KeyTable:
    """Distinct keys (codes in order of first appearance) with their type, (type, scope) bucket and flags."""

    keys: Objects
    codes: Codes  # per input occurrence
    kind: npt.NDArray[np.int8]  # index into _TYPES, -1 if unknown
    bucket: Codes  # (type, scope) bucket of hub and limit counting
    bucket_limit: Codes
    valid: Mask
    blocked: Mask
    _index: _Lookup

    @property
    def size(self) -> int:
        return len(self.keys)

    @classmethod
    def build(cls, occurrences: Objects, rules: IdentityRules, clock: _Clock) -> _KeyTable:
        import numpy as np

        keys, codes, index = _factorize(occurrences)
        clock.lap("factorize")
        kind, valid, bucket, bucket_limit = _classify(keys, index, rules)
        blocked = np.zeros(len(keys), dtype=bool)
        blocked[_present(index.find(keys, rules.blocked_values))] = True
        clock.lap("types")
        return cls(keys, codes, kind, bucket, bucket_limit, valid, blocked, index)

    def find(self, wanted: Iterable[str]) -> Codes:
        """Codes of these keys, -1 for a key not in the input."""
        return self._index.find(self.keys, wanted)


def _classify(keys: Objects, index: _Lookup, rules: IdentityRules) -> tuple[npt.NDArray[np.int8], Mask, Codes, Codes]:
    """Per key its type (-1 if unknown), whether it is well formed, and its (type, scope) bucket with the limit.

    Two passes of C-level string calls (find the first colon, test the known prefixes): splitting millions of keys
    into new strings, or more passes, cost several times more. Scopes are split off as Identifier.from_key does, so
    the buckets are the ones IdentityRules.is_hub and over_limit count.
    """
    import numpy as np

    n = len(keys)
    colon = np.fromiter(map(str.find, keys, repeat(":")), dtype=np.int64, count=n)
    # a known prefix ends at the first colon, so its length tells the type: the first type of each length is tested
    # on every key, the others (e-mail has the length of phone) only on the keys that failed with that length
    first_of_length: dict[int, int] = {}
    for i, t in enumerate(_TYPES):
        first_of_length.setdefault(len(t.value), i)
    by_length = np.full(max(first_of_length) + 2, -1, dtype=np.int8)
    for length, i in first_of_length.items():
        by_length[length] = i
    tested = tuple(_PREFIXES[i] for i in first_of_length.values())
    known = np.fromiter(map(str.startswith, keys, repeat(tested)), dtype=bool, count=n)
    kind = np.where(known, by_length[np.clip(colon, 0, len(by_length) - 1)], -1).astype(np.int8)
    for i, t in enumerate(_TYPES):
        if first_of_length[len(t.value)] != i:
            maybe = np.flatnonzero(~known & (colon == len(t.value)))
            hit = maybe[np.fromiter(map(str.startswith, keys[maybe], repeat(_PREFIXES[i])), bool, len(maybe))]
            kind[hit] = i
    valid = kind >= 0
    valid[_present(index.find(keys, _PREFIXES))] = False  # a type with no value

    scoped = np.flatnonzero(valid & np.array([t in SCOPED_TYPES for t in _TYPES] + [False])[kind])
    in_scope = keys[scoped].tolist()
    lengths = np.fromiter(map(len, in_scope), dtype=np.int64, count=len(scoped))
    second = np.fromiter(map(str.find, in_scope, repeat(":"), (colon[scoped] + 1).tolist()), np.int64, len(scoped))
    complete = (second > colon[scoped] + 1) & (lengths > second + 1)  # a scope and a value, both non-empty
    valid[scoped[~complete]] = False
    heads: Iterator[str] = map(getitem, compress(in_scope, complete), map(slice, (second[complete] + 1).tolist()))
    scoped = scoped[complete]
    scopes: dict[str, int] = {}  # "type:scope:" -> its first position; a brand has a handful
    first = np.fromiter(map(scopes.setdefault, heads, count()), dtype=np.int64, count=len(scoped))
    firsts = np.fromiter(scopes.values(), dtype=np.int64, count=len(scopes))  # ascending: insertion order
    bucket = kind.astype(np.int64)
    bucket[scoped] = len(_TYPES) + np.searchsorted(firsts, first)
    limits = [rules.limits.get(t, _UNLIMITED) for t in _TYPES]
    limits += [limits[_TYPE_INDEX[head.partition(":")[0]]] for head in scopes]
    return kind, valid, bucket, np.array(limits, dtype=np.int64)


class _Lookup(Protocol):
    def find(self, keys: Objects, wanted: Iterable[str]) -> Codes: ...


@dataclass(frozen=True)
class _HashIndex:
    """Key -> code lookup: sorted key hashes and their codes (exact: a hit is compared as a string)."""

    hashes: Codes
    codes: Codes

    def find(self, keys: Objects, wanted: Iterable[str]) -> Codes:
        import numpy as np

        items = list(wanted)
        if not items or not len(self.hashes):
            return np.full(len(items), -1, dtype=np.int64)
        h = np.fromiter(map(hash, items), dtype=np.int64, count=len(items))
        pos = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
        code = np.where(self.hashes[pos] == h, self.codes[pos], -1)
        hit = code >= 0
        same = keys[code[hit]] == np.array(items, dtype=object)[hit]
        code[np.flatnonzero(hit)[~same.astype(bool)]] = -1
        return code


def _factorize(occurrences: Objects) -> tuple[Objects, Codes, _Lookup]:
    """Distinct keys (in order of first appearance) and the code of each occurrence.

    Python's string hash runs in C and numpy sorts 64-bit integers fast, which beats sorting millions of strings
    or filling a dict with them several times over (both are random memory access per string). Keys are grouped
    by their hash; a second hash, of the reversed key, must then agree within every group. A 64-bit collision
    (about 1 in 10^6 runs at 10M keys) therefore sends the run to the exact dict path instead of merging two
    identifiers; only a collision of both hashes (about 1 in 10^25) would go unnoticed. Comparing every
    occurrence with its group's string instead costs three times the whole resolution at 10M links.
    """
    import numpy as np

    n = len(occurrences)
    if n == 0:
        return _factorize_exact(occurrences)
    h = np.fromiter(map(hash, occurrences), dtype=np.int64, count=n)
    check = np.fromiter(map(hash, map(_REVERSED, occurrences)), dtype=np.int64, count=n)
    # one value sort instead of an argsort (several times slower): the hash's high bits with the position below
    bits = max(1, (n - 1).bit_length())
    packed = ((h >> bits) << bits) | np.arange(n, dtype=np.int64)
    packed.sort()
    perm = packed & ((1 << bits) - 1)
    hs = h[perm]
    new_key, new_run = _starts(hs), _starts(packed >> bits)
    mixed = new_key & ~new_run
    if mixed.any():  # a few runs of equal high bits hold several hashes: order those runs by the whole hash
        run = np.cumsum(new_run, dtype=np.int64) - 1
        bad = np.zeros(int(run[-1]) + 1, dtype=bool)
        bad[run[mixed]] = True
        sel = np.flatnonzero(bad[run])
        order = np.lexsort((perm[sel], hs[sel]))
        perm[sel], hs[sel] = perm[sel][order], hs[sel][order]
        new_key = _starts(hs)
    check = check[perm]
    if not bool(((check[1:] == check[:-1]) | new_key[1:]).all()):
        return _factorize_exact(occurrences)
    firsts = perm[new_key]  # positions ascend within a key, so this is each key's first occurrence
    by_first = _argsort(firsts)  # codes in order of first appearance: the same in every run (hashes are salted)
    recode = np.empty(len(firsts), dtype=np.int64)
    recode[by_first] = np.arange(len(firsts), dtype=np.int64)
    codes = np.empty(n, dtype=np.int64)
    codes[perm] = recode[np.cumsum(new_key, dtype=np.int64) - 1]
    return occurrences[firsts[by_first]], codes, _HashIndex(hs[new_key], recode)


def _starts(values: Codes) -> Mask:
    """True where a run of equal values starts (values sorted)."""
    import numpy as np

    out = np.empty(len(values), dtype=bool)
    out[:1] = True
    np.not_equal(values[1:], values[:-1], out=out[1:])
    return out


def _distinct(values: Codes) -> tuple[Codes, Codes]:
    """Sorted distinct values and their counts (np.unique's default hash table is slower on 10M integers)."""
    import numpy as np

    ordered = np.sort(values)
    at = np.flatnonzero(_starts(ordered))
    return ordered[at], np.diff(np.append(at, len(ordered)))


def _argsort(values: Codes) -> Codes:
    """Stable argsort of non-negative integers, by one packed value sort when value and position fit in 63 bits."""
    import numpy as np

    n = len(values)
    bits = max(1, (n - 1).bit_length())
    if n == 0 or int(values.max()).bit_length() + bits > 62:
        return np.argsort(values, kind="stable")
    packed = (values << bits) | np.arange(n, dtype=np.int64)
    packed.sort()
    return packed & ((1 << bits) - 1)


def _factorize_exact(occurrences: Objects) -> tuple[Objects, Codes, _Lookup]:
    import numpy as np

    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in occurrences), np.int64, count=len(occurrences))
    keys = np.empty(len(index), dtype=object)
    keys[:] = list(index)
    return keys, codes, _DictIndex(index)


@dataclass(frozen=True)
class _DictIndex:
    """Key -> code lookup of the exact path (colliding hashes cannot be told apart by a sorted hash array)."""

    index: dict[str, int]

    def find(self, keys: Objects, wanted: Iterable[str]) -> Codes:
        import numpy as np

        return np.array([self.index.get(w, -1) for w in wanted], dtype=np.int64).reshape(-1)


def _present(codes: Codes) -> Codes:
    return codes[codes >= 0]


def _occurrences(*parts: Sequence[str]) -> Objects:
    """All keys in one object array (lists and numpy arrays are copied as they are, other sequences listed)."""
    import numpy as np

    out = np.empty(sum(len(p) for p in parts), dtype=object)
    at = 0
    for part in parts:
        out[at : at + len(part)] = part if isinstance(part, list | np.ndarray) else list(part)
        at += len(part)
    return out


def _report_invalid(
    log: ProblemLog,
    table: _KeyTable,
    columns: tuple[tuple[str, Codes], ...],
    bad: Mask,
    lines: Sequence[int] | None,
) -> None:
    import numpy as np

    rows = np.flatnonzero(bad)
    room = max(0, log.keep - len(log.examples))
    for row in rows[:room].tolist():
        line = int(lines[row]) if lines is not None else row + 1
        name, codes = next((name, codes) for name, codes in columns if not table.valid[codes[row]])
        key = str(table.keys[codes[row]])
        log.add(line, key_error(key) or "malformed key", name, key)
    log.count += max(0, len(rows) - room)  # counted, not kept


def key_error(key: str) -> str | None:
    """Why `key` is not an identifier key (type:value, or type:scope:value for scoped types), None if it is one."""
    kind, _, rest = key.partition(":")
    if kind not in _TYPE_INDEX:
        return f"unknown identifier type {kind!r}: a key is type:value (or type:scope:value)"
    if IdentifierType(kind) in SCOPED_TYPES:
        scope, sep, value = rest.partition(":")
        return None if scope and sep and value else f"{kind} keys are {kind}:scope:value"
    return None if rest else f"{kind} key has no value"


def _edges(table: _KeyTable, rules: IdentityRules, ca: Codes, cb: Codes, usable: Mask) -> tuple[Codes, Codes]:
    """Distinct allowed edges, oriented (low, high) as `IdentityRules.orient` does."""
    import numpy as np

    t = len(_TYPES)  # one more "type" for blocked and malformed keys: it links with nothing
    allowed = np.zeros((t + 1) * (t + 1), dtype=bool)
    for i, x in enumerate(_TYPES):
        for j, y in enumerate(_TYPES):
            allowed[i * (t + 1) + j] = rules.allows(f"{x.value}:\0a", f"{y.value}:\0b")
    kind = np.where(usable, table.kind, t).astype(np.int64)
    keep = allowed[kind[ca] * (t + 1) + kind[cb]] & (ca != cb)
    ca, cb = ca[keep], cb[keep]
    rank = np.array([rules.rank(x) for x in _TYPES] + [t], dtype=np.int64)[kind]
    ra, rb = rank[ca], rank[cb]
    a_low = ra > rb  # a lower priority (a larger rank) is the low end
    tie = np.flatnonzero(ra == rb)  # same type (only with custom links): the larger key is the low end
    if len(tie):
        a_low[tie] = (table.keys[ca[tie]] > table.keys[cb[tie]]).astype(bool)
    low = np.where(a_low, ca, cb)
    n = np.int64(table.size)
    ids, _ = _distinct(low * n + (ca + cb - low))  # sorted by low, then high
    return ids // n, ids % n


def _hubs(table: _KeyTable, rules: IdentityRules, low: Codes, high: Codes) -> Mask:
    """`IdentityRules.is_hub` for every low end at once: distinct strictly higher neighbours per bucket and in all."""
    import numpy as np

    rank = np.array([rules.rank(t) for t in _TYPES], dtype=np.int64)
    strict = rank[table.kind[high]] < rank[table.kind[low]]
    low, high = low[strict], high[strict]
    hub = np.bincount(low, minlength=table.size) > rules.hub_max_links
    n_buckets = np.int64(len(table.bucket_limit))
    per_bucket, counts = _distinct(low * n_buckets + table.bucket[high])
    over = counts > table.bucket_limit[per_bucket % n_buckets]
    hub[per_bucket[over] // n_buckets] = True
    return hub


def _components(
    table: _KeyTable,
    low: Codes,
    high: Codes,
    hub: Mask,
    node: Mask,
    disabled: Iterable[tuple[str, str]],
) -> tuple[Codes, int]:
    """Person index per key (-1 for hubs and non-nodes) from the live edges: no hub end, not disabled."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = np.int64(table.size)
    live = ~hub[low] & ~hub[high]
    cut = list(disabled)
    if cut:
        cut_low, cut_high = table.find(c[0] for c in cut), table.find(c[1] for c in cut)
        found = (cut_low >= 0) & (cut_high >= 0)
        live &= ~np.isin(low * n + high, cut_low[found] * n + cut_high[found])
    low, high = low[live], high[live]
    indptr = np.zeros(table.size + 1, dtype=np.int64)  # edges come sorted by low: the CSR rows as they are
    np.cumsum(np.bincount(low, minlength=table.size), out=indptr[1:])
    graph = csr_matrix((np.ones(len(low), dtype=np.int8), high, indptr), shape=(table.size, table.size))
    _, labels = connected_components(graph, directed=False)
    members = node & ~hub
    used = np.zeros(int(labels.max(initial=0)) + 1, dtype=bool)
    used[labels[members]] = True  # components of hubs and non-nodes are not persons: number the rest 0, 1, ...
    number = np.cumsum(used, dtype=np.int64) - 1
    person = np.full(table.size, -1, dtype=np.int64)
    person[members] = number[labels[members]]
    return person, int(used.sum())


def _result(
    table: _KeyTable,
    rules: IdentityRules,
    namespace: str,
    node: Mask,
    hub: Mask,
    person: Codes,
    n_persons: int,
    n_links: int,
    n_edges: int,
    log: ProblemLog,
    clock: _Clock,
) -> BulkResolution:
    import numpy as np

    members = np.flatnonzero(person >= 0)
    of = person[members]
    min_keys = _min_keys(table, members, of)
    clock.lap("min_keys")
    person_ids = _person_ids(namespace, min_keys.tolist())
    clock.lap("person_ids")

    n_buckets = np.int64(len(table.bucket_limit))
    per_bucket, counts = _distinct(of * n_buckets + table.bucket[members])
    flagged, _ = _distinct(per_bucket[counts > table.bucket_limit[per_bucket % n_buckets]] // n_buckets)
    is_flagged = np.zeros(n_persons, dtype=bool)
    is_flagged[flagged] = True
    held: dict[int, list[str]] = {int(p): [] for p in flagged}
    picked = members[is_flagged[of]]
    for p, key in zip(person[picked].tolist(), table.keys[picked].tolist(), strict=True):
        held[p].append(key)
    over_limit = {p: rules.over_limit(keys) for p, keys in held.items()}
    keep = np.flatnonzero(node)
    keys, person, hub = table.keys[keep], person[keep], hub[keep]
    clock.lap("over_limit")
    summary = BulkSummary(
        links=n_links,
        nodes=len(keep),
        edges=n_edges,
        hubs=int(hub.sum()),  # hubs are nodes: `hub` is already cut down to them
        persons=n_persons,
        persons_over_limit=len(over_limit),
        blocked=int(table.blocked.sum()),
        rejected=log.count,
        seconds=round(time.perf_counter() - clock.started, 3),
        phases=clock.laps,
    )
    return BulkResolution(
        keys=keys,
        person=person,
        hub=hub,
        person_ids=person_ids,
        min_keys=min_keys,
        over_limit=over_limit,
        summary=summary,
        problems=list(log.examples),
    )


def _min_keys(table: _KeyTable, members: Codes, of: Codes) -> Objects:
    """The smallest key of each person. Keys compare by their type name first (no name is a prefix of another), so
    only a person's keys of its alphabetically first type are compared as strings, and most persons have one."""
    import numpy as np

    if not len(members):
        return np.empty(0, dtype=object)
    ranked = (of << _TYPE_BITS) + np.array(_ALPHABETICAL, dtype=np.int64)[table.kind[members]]
    order = _argsort(ranked)
    ranked = ranked[order]
    run = np.flatnonzero(_starts(ranked))
    run_end = np.append(run[1:], len(ranked))
    lead = _starts(ranked[run] >> _TYPE_BITS)  # the first run of each person: its keys of the first type
    start, end = run[lead], run_end[lead]
    out: Objects = table.keys[members[order[start]]]
    tied = np.flatnonzero(end - start > 1)
    if len(tied):
        size = (end - start)[tied]
        before = np.cumsum(size) - size
        at = np.repeat(start[tied] - before, size) + np.arange(int(size.sum()), dtype=np.int64)
        out[tied] = np.minimum.reduceat(table.keys[members[order[at]]], before)
    return out


def _person_ids(namespace: str, min_keys: list[str]) -> list[str]:
    """`person_id_for` for many keys: one SHA-1 per person, the uuid5 version bits set on all digests at once."""
    import numpy as np

    if not min_keys:
        return []
    base = hashlib.sha1(BULK_PERSON_NAMESPACE.bytes + f"{namespace}#".encode(), usedforsecurity=False)

    def digest(key: str) -> bytes:  # copying the hashed prefix is cheaper than hashing it again
        h = base.copy()
        h.update(key.encode())
        return h.digest()

    raw = np.frombuffer(b"".join(map(digest, min_keys)), dtype=np.uint8).reshape(-1, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex().encode("utf-32-le")
    ids: list[str] = np.frombuffer(text, dtype="<U32").tolist()
    return ids


# ---- readers ------------------------------------------------------------------------------------------------------


@dataclass
class LinkInput:
    a: list[str]
    b: list[str]
    lines: array[int]  # the line (row, for Parquet) of each link
    problems: ProblemLog
    rows: int  # rows read, rejected ones included


@dataclass
class EventInput:
    events: list[list[str]]
    lines: array[int]
    problems: ProblemLog
    rows: int
    skipped: int  # events left out: not JSON, no identifiers, or an invalid identifier (see `problems`)


def link_format(path: Path) -> LinkFormat:
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if ".jsonl" in suffixes or ".ndjson" in suffixes:
        return "jsonl"
    if ".csv" in suffixes:
        return "csv"
    raise InvalidInputError(f"cannot tell the format of {path.name}: use .csv, .parquet or .jsonl", "path")


def read_links(path: Path, problems: ProblemLog | None = None) -> LinkInput:
    """Links (columns `a`, `b`: identifier keys) from a CSV file with a header, Parquet or JSON Lines."""
    log = problems if problems is not None else ProblemLog()
    fmt = link_format(path)
    if fmt == "csv":
        return _read_links_csv(path, log)
    if fmt == "jsonl":
        return _read_links_jsonl(path, log)
    return _read_links_parquet(path, log)


def _take(out: LinkInput, line: int, a: object, b: object) -> None:
    out.rows += 1
    if not isinstance(a, str) or not a:
        out.problems.add(line, "column a is missing or empty", "a", a)
    elif not isinstance(b, str) or not b:
        out.problems.add(line, "column b is missing or empty", "b", b)
    else:
        out.a.append(a)
        out.b.append(b)
        out.lines.append(line)


def _read_links_csv(path: Path, log: ProblemLog) -> LinkInput:
    out = LinkInput([], [], array("q"), log, 0)
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets write a byte order mark
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or "a" not in header or "b" not in header:
            raise InvalidInputError(f"{path.name}: the first line must name the columns a and b", "header")
        ia, ib = header.index("a"), header.index("b")
        width = max(ia, ib) + 1
        for row in reader:
            if not row:
                continue
            if len(row) < width:
                out.rows += 1
                log.add(reader.line_num, f"expected columns a and b, got {len(row)} fields", None, ",".join(row))
                continue
            _take(out, reader.line_num, row[ia], row[ib])
    return out


def _read_links_jsonl(path: Path, log: ProblemLog) -> LinkInput:
    out = LinkInput([], [], array("q"), log, 0)
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                out.rows += 1
                log.add(line, f"not JSON: {exc.msg}", None, text.strip())
                continue
            if not isinstance(row, dict):
                out.rows += 1
                log.add(line, "expected an object with a and b", None, text.strip())
                continue
            _take(out, line, row.get("a"), row.get("b"))
    return out


def _read_links_parquet(path: Path, log: ProblemLog) -> LinkInput:
    columns = _parquet_columns(path)
    out = LinkInput([], [], array("q"), log, 0)
    for row, (a, b) in enumerate(zip(columns["a"], columns["b"], strict=True), start=1):
        _take(out, row, a, b)
    return out


def _parquet_columns(path: Path) -> dict[str, list[Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        table = pq.read_table(path)
        _require_columns(path, table.column_names)
        return {name: table.column(name).to_pylist() for name in ("a", "b")}
    try:
        import duckdb
    except ImportError as exc:
        raise InvalidInputError("reading Parquet needs pyarrow or duckdb; convert the file to CSV", "path") from exc
    with duckdb.connect() as con:
        relation = con.read_parquet(str(path))
        _require_columns(path, relation.columns)
        rows = relation.project("CAST(a AS VARCHAR) AS a, CAST(b AS VARCHAR) AS b").fetchall()
    return {"a": [r[0] for r in rows], "b": [r[1] for r in rows]}


def _require_columns(path: Path, names: Sequence[str]) -> None:
    if "a" not in names or "b" not in names:
        raise InvalidInputError(f"{path.name}: needs columns a and b, has {list(names)}", "columns")


def read_events(path: Path, phone_region: str = "CN", problems: ProblemLog | None = None) -> EventInput:
    """Identifier keys of canonical events, one JSON object a line, normalized as the ingest API does.

    An event with an invalid identifier is left out whole (the ingest API would reject it), and every invalid
    identifier is reported with its line and position.
    """
    log = problems if problems is not None else ProblemLog()
    out = EventInput([], array("q"), log, 0, 0)
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            out.rows += 1
            keys = _event_keys(text, line, phone_region, log)
            if keys is None:
                out.skipped += 1
                continue
            out.events.append(keys)
            out.lines.append(line)
    return out


def _event_keys(text: str, line: int, phone_region: str, log: ProblemLog) -> list[str] | None:
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        log.add(line, f"not JSON: {exc.msg}", None, text.strip())
        return None
    items = event.get("identifiers") if isinstance(event, dict) else None
    if not isinstance(items, list) or not items:
        log.add(line, "an event needs a non-empty identifiers list", "identifiers")
        return None
    keys: list[str] = []
    for position, item in enumerate(items):
        key, error = _identifier_key(item, phone_region)
        if key is None:
            shown = json.dumps(item, ensure_ascii=False)
            log.add(line, error or "invalid identifier", f"identifiers.{position}", shown)
        else:
            keys.append(key)
    return keys if len(keys) == len(items) else None


def _identifier_key(item: object, phone_region: str) -> KeyOrError:
    """(normalized key, None) or (None, why not). Identifiers repeat across events: a cache saves the parsing."""
    if isinstance(item, dict) and set(item) <= {"type", "value", "scope"}:
        try:
            return _cached_key(item.get("type"), item.get("value"), item.get("scope"), phone_region)
        except TypeError:  # an unhashable value: not an identifier either, validation says why
            pass
    return _validated_key(item, phone_region)


@lru_cache(maxsize=1 << 20)
def _cached_key(kind: object, value: object, scope: object, phone_region: str) -> KeyOrError:
    item = {"type": kind, "value": value} | ({"scope": scope} if scope is not None else {})
    return _validated_key(item, phone_region)


def _validated_key(item: object, phone_region: str) -> KeyOrError:
    try:
        return Identifier.model_validate(item, context={"phone_region": phone_region}).key, None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, (f"{where}: {first['msg']}" if where else str(first["msg"]))


# ---- writer -------------------------------------------------------------------------------------------------------


def write_result(result: BulkResolution, path: Path) -> Path:
    """identifier, person_id (empty for a hub), hub: Parquet (pyarrow, else duckdb) unless `path` ends in .csv or
    neither is installed, then CSV next to it. Returns the path written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() != ".csv":
        written = _write_parquet(result, path.with_suffix(".parquet"))
        if written is not None:
            return written
        path = path.with_suffix(".csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = SafeWriter(handle)  # identifier values come from channels: no cell may run as a formula
        writer.writerow(("identifier", "person_id", "hub"))
        writer.writerows((key, pid or "", "true" if hub else "false") for key, pid, hub in result.rows())
    return path


def _write_parquet(result: BulkResolution, path: Path) -> Path | None:
    import numpy as np

    ids = np.array([*result.person_ids, None], dtype=object)[result.person]  # -1 (a hub) picks the None
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        table = pa.table({"identifier": result.keys.tolist(), "person_id": ids.tolist(), "hub": result.hub})
        pq.write_table(table, path)
        return path
    try:
        import duckdb
    except ImportError:
        return None
    with duckdb.connect() as con:
        con.register("result_rows", {"identifier": result.keys, "person_id": ids, "hub": result.hub})
        con.view("result_rows").write_parquet(str(path))
    return path
