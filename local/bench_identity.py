"""`cdp bench --suite identity-bulk`: offline identity resolution of a retail brand's history, links per second.

The links are synthetic but shaped like a brand's event history: every person has a phone, most an e-mail, one to
three devices, many a WeChat OpenID (per app), some a UnionID, member card or Tmall/JD buyer id; events repeat the
same pairs; about 1% of devices are shared (family iPads, store tablets used by hundreds of customers) and some links
carry junk values the rules block. Generating them is not timed; resolving them is.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdp.identity.bulk import resolve_links
from cdp_local.bench import Metric

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Index = npt.NDArray[np.int64]

_MINI_PROGRAM, _OFFICIAL_ACCOUNT = "wx5f3a9c2e7b1d4f60", "wx8e1b6d0c4a2f9e37"
_BLOCKED = ("device_id:unknown", "device_id:00000000-0000-0000-0000-000000000000", "email:test@example.com")
_DISTINCT_SHARE = 0.7  # the rest of the links repeat pairs already seen (the same app login on many events)
_LINKS_PER_PERSON = 4.6  # distinct links one synthetic person makes, on average (measured on the generator)

Status = Callable[[str], None]


@dataclass(frozen=True)
class SyntheticLinks:
    a: list[str]
    b: list[str]
    persons: int  # true persons behind the links
    shared_devices: int
    blocked_links: int


def synthetic_links(n: int, seed: int = 11, fresh_strings: bool = True) -> SyntheticLinks:
    """`n` links (a, b) of identifier keys. With `fresh_strings` every key is its own string object, as a file
    reader makes them, so the timing includes hashing every string rather than reusing cached hashes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    persons = max(10, int(n * _DISTINCT_SHARE / _LINKS_PER_PERSON))
    pool: list[str] = []
    pairs: list[tuple[Index, Index]] = []  # (a, b) as indexes into pool

    def add(keys: list[str]) -> Index:
        start = len(pool)
        pool.extend(keys)
        return np.arange(start, len(pool))

    def owners(share: float) -> Index:
        return np.flatnonzero(rng.random(persons) < share)

    ids = np.arange(persons)
    phone = add([f"phone:+861{3 + i % 7}{i:09d}" for i in ids.tolist()])
    # devices: 1-3 per person, each linked to its owner's phone (app events)
    per_person = rng.choice([1, 2, 3], size=persons, p=[0.45, 0.35, 0.20])
    device_owner = np.repeat(ids, per_person)
    device = add([f"device_id:{h:016x}" for h in rng.integers(0, 2**63, len(device_owner)).tolist()])
    pairs.append((device, phone[device_owner]))
    # e-mail on 60%: linked to the phone (profile) and the first device (web login); 0.5% also a mistyped second one
    with_email = owners(0.6)
    email = add([f"email:user{i:x}@{('qq.com', '163.com', 'gmail.com')[i % 3]}" for i in with_email.tolist()])
    first_device = np.r_[0, np.cumsum(per_person)[:-1]]
    pairs += [(email, phone[with_email]), (email, device[first_device[with_email]])]
    typo = with_email[rng.random(len(with_email)) < 0.005]
    pairs.append((add([f"email:user{i:x}@gmial.com" for i in typo.tolist()]), phone[typo]))
    # WeChat: mini-program OpenID on 50% (authorized phone), official account OpenID on 20%, UnionID on 15%
    for app, share in ((_MINI_PROGRAM, 0.5), (_OFFICIAL_ACCOUNT, 0.2)):
        who = owners(share)
        tokens = rng.integers(0, 2**63, len(who)).tolist()
        pairs.append((add([f"wechat_openid:{app}:o{t:024x}" for t in tokens]), phone[who]))
    who = owners(0.15)
    pairs.append((add([f"wechat_unionid:u{i:020x}" for i in who.tolist()]), phone[who]))
    # POS member cards (25%) and marketplace buyers (20%, Tmall or JD)
    who = owners(0.25)
    pairs.append((add([f"member_card:MC{i:010d}" for i in who.tolist()]), phone[who]))
    who = owners(0.2)
    platforms = ("tmall", "jd")
    pairs.append((add([f"platform_buyer_id:{platforms[i % 2]}:b{i:x}" for i in who.tolist()]), phone[who]))
    # ~1% shared devices: mostly family iPads (2-3 phones), one in ten a store tablet (30-300 customers)
    shared = max(1, len(device) // 100)
    reach = np.where(rng.random(shared) < 0.9, rng.integers(2, 4, shared), rng.integers(30, 301, shared))
    tablet = add([f"device_id:shared{j:011x}" for j in range(shared)])
    pairs.append((np.repeat(tablet, reach), phone[rng.integers(0, persons, int(reach.sum()))]))

    a_idx = np.concatenate([p[0] for p in pairs])
    b_idx = np.concatenate([p[1] for p in pairs])
    # junk: 0.2% of the links carry a blocked value instead of their device or e-mail
    junk = np.flatnonzero(rng.random(len(a_idx)) < 0.002)
    a_idx[junk] = add(list(_BLOCKED))[rng.integers(0, len(_BLOCKED), len(junk))]
    # repeats up to n (or a cut down to n), in a shuffled order with either end first
    order = rng.permutation(np.r_[np.arange(len(a_idx)), rng.integers(0, len(a_idx), max(0, n - len(a_idx)))])[:n]
    a_idx, b_idx = a_idx[order], b_idx[order]
    swap = rng.random(n) < 0.5
    a_idx[swap], b_idx[swap] = b_idx[swap], a_idx[swap]
    keys = np.array(pool, dtype=object)
    a, b = keys[a_idx].tolist(), keys[b_idx].tolist()
    if fresh_strings:
        a, b = [k.encode().decode() for k in a], [k.encode().decode() for k in b]
    return SyntheticLinks(a, b, persons, shared, int(np.isin(order, junk).sum()))


def identity_bulk_benchmark(links: int = 10_000_000, seed: int = 11, status: Status | None = None) -> dict[str, Metric]:
    """Resolve `links` synthetic links once; figures for bench-output/results.json."""
    say = status or (lambda _: None)
    say(f"generating {links:,} links (not timed)")
    t0 = time.perf_counter()
    data = synthetic_links(links, seed)
    generated = time.perf_counter() - t0
    generation_peak = _peak_rss_mb()
    say(f"resolving {links:,} links")
    t1, cpu1 = time.perf_counter(), time.process_time()
    result = resolve_links(data.a, data.b, namespace="bench-brand")
    seconds, cpu = time.perf_counter() - t1, time.process_time() - cpu1
    s = result.summary
    phases: dict[str, Metric] = {
        f"identity_bulk.phase_seconds.{name}": {"value": round(spent, 2), "unit": "s"}
        for name, spent in s.phases.items()
    }
    return phases | {
        "identity_bulk.links": {"value": links, "unit": "links"},
        "identity_bulk.seconds": {"value": round(seconds, 2), "unit": "s"},
        "identity_bulk.links_per_s": {"value": round(links / seconds), "unit": "links/s"},
        # single-threaded and waiting on nothing, so about the wall clock
        "identity_bulk.cpu_seconds": {"value": round(cpu, 2), "unit": "s"},
        "identity_bulk.peak_rss_mb": {"value": round(_peak_rss_mb()), "unit": "MB"},
        # the peak while generating the links (20M Python strings): what the peak adds to it is the resolver's
        "identity_bulk.peak_rss_before_mb": {"value": round(generation_peak), "unit": "MB"},
        "identity_bulk.generate_seconds": {"value": round(generated, 2), "unit": "s"},
        "identity_bulk.identifiers": {"value": s.nodes, "unit": "identifiers"},
        "identity_bulk.edges": {"value": s.edges, "unit": "edges"},
        "identity_bulk.persons": {"value": s.persons, "unit": "persons"},
        "identity_bulk.true_persons": {"value": data.persons, "unit": "persons"},
        "identity_bulk.hubs": {"value": s.hubs, "unit": "identifiers"},
        "identity_bulk.shared_devices": {"value": data.shared_devices, "unit": "identifiers"},
        "identity_bulk.persons_over_limit": {"value": s.persons_over_limit, "unit": "persons"},
        "identity_bulk.cpus": {"value": _cpus(), "unit": "cores"},
    }


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (generation included: it runs first, in the same process)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
