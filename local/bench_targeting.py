"""`cdp bench --suite targeting`: uplift vs response ranking at equal budget, judged by the synthetic world's truth over
several seeded worlds.

One demo run is one world: the difference between the two rankings' true incremental orders there carries the noise
of that world's training data. This suite repeats the demo's comparison on `worlds` seeded brands (the demo's
generator, `customers` each) and reports the spread over worlds, which is what "uplift targeting beats response
targeting on this kind of customer base" means.

Each world, in process: the brand's events grouped into persons as the platform resolves them (OneID's bulk resolver,
which builds the same persons as the demo's online pipeline: a person the rules cannot link stays split, and some
traces land on a profile without the phone), the demo's response and uplift models trained by `train_model` on the
brand's four randomized SMS campaigns, every eligible person (a phone whose owner consents to SMS now, an order
before) scored as of now, and both picks at the demo campaign's budget share (`REACH_SHARE`, about 250 of 830) made
by the campaign code's own rankings (`targeting_truth`: response by P(order | message), uplift by expected profit
with the demo's margin and coupon). The truth is each pick's expected incremental orders from the world's hidden
uplift of the person who owns the phone.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from scipy.stats import t as student_t

from cdp.campaigns.models import Member
from cdp.campaigns.targeting import Targeting
from cdp.identity.bulk import resolve_events
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.models.artifact import unpack
from cdp.models.labels import PersonHistory
from cdp.models.requests import TrainRequest
from cdp.models.training import train_model
from cdp.org import load_org
from cdp.profile.models import Profile
from cdp_local.bench import Metric
from cdp_local.demo.brand import SyntheticBrand, generate_brand
from cdp_local.demo.catalog import BRAND_ID
from cdp_local.demo.models import RESPONSE_MODEL, UPLIFT_MODEL, demo_models, targeting_truth
from cdp_local.demo.truth import event_keys

Status = Callable[[str], None]
REACH_SHARE = 0.3  # the demo campaign's budget reaches about 250 of its ~830 eligible persons
MESSAGE_COST_MINOR = 5  # the demo campaign's SMS price
# the demo campaign's targeting: ~50 CNY margin on an extra cake order, a 20 CNY coupon
TARGETING = Targeting(ranking="auto", uplift_model=UPLIFT_MODEL, margin_minor=5000, offer_cost_minor=2000)
FIRST_SEED = 7  # the demo's default world is the first


def _resolved(brand: SyntheticBrand) -> tuple[list[PersonHistory], dict[str, list[str]]]:
    """Each resolved person's timeline, and the identifiers the world knows them by (phone, e-mail, member card)."""
    org = load_org().brand(BRAND_ID)
    keys = [[k for k in event_keys(e) if k not in org.rules.blocked_values] for e in brand.events]
    bulk = resolve_events(keys, namespace=org.namespace, rules=org.rules)
    owner = {key: person for key, person, hub in bulk.rows() if person is not None and not hub}
    events: dict[str, list[CanonicalEvent]] = defaultdict(list)
    contacts: dict[str, set[str]] = defaultdict(set)
    for raw, event_keys_ in zip(brand.events, keys, strict=True):
        person = next((owner[k] for k in event_keys_ if k in owner), None)
        if person is None:  # only shared identifiers: nobody's timeline
            continue
        events[person].append(parse_event(raw))
        contacts[person].update(k for k in event_keys_ if k.startswith(("phone:", "email:", "member_card:")))
    histories = [
        PersonHistory(Profile(person_id=p, brand_id=BRAND_ID, created_at=brand.now, updated_at=brand.now), e)
        for p, e in sorted(events.items())
    ]
    return histories, {p: sorted(c) for p, c in contacts.items()}


def one_world(seed: int, customers: int) -> dict[str, Any]:
    """The demo's two models trained on one seeded brand and both rankings judged by its truth."""
    brand = generate_brand(customers=customers, seed=seed)
    histories, contacts = _resolved(brand)
    requests = {r["model_name"]: r for r in demo_models(seed, 0.0)}
    models = {}
    for name in (RESPONSE_MODEL, UPLIFT_MODEL):
        blob, manifest = train_model(TrainRequest.model_validate(requests[name]), histories, brand.now)
        models[name] = unpack(blob, manifest)
    consenting = {p.person_id for p in brand.persons if p.sms_consent.granted_at(brand.now)}

    def eligible(history: PersonHistory) -> bool:
        phones = [k for k in contacts.get(history.profile.person_id, []) if k.startswith("phone:")]
        reachable = any(brand.truth.get(k) in consenting for k in phones)
        return reachable and any(e.event_type == "order_placed" for e in history.events)

    pool = [h for h in histories if eligible(h)]
    response = models[RESPONSE_MODEL].predict_people(pool, brand.now)
    uplift = models[UPLIFT_MODEL].predict_people(pool, brand.now)
    members = [
        Member(person_id=h.profile.person_id, score=r.score, uplift=u.score, p_treated=u.outputs.get("treated"))
        for h, r, u in zip(pool, response, uplift, strict=True)
    ]
    capacity = round(REACH_SHARE * len(members))
    keys_of = {m.person_id: contacts[m.person_id] for m in members}
    truth = targeting_truth(members, capacity, TARGETING, MESSAGE_COST_MINOR, brand.world, keys_of)
    return {"seed": seed, "persons": len(histories), **truth}


def targeting_benchmark(worlds: int, customers: int, status: Status | None = None) -> dict[str, Metric]:
    """Per-world true incremental orders of both picks, and the mean difference over worlds with a t interval."""
    if worlds < 2:
        raise ValueError("the targeting suite needs at least 2 worlds to give an interval over worlds")
    rows = []
    t0 = time.perf_counter()
    for i in range(worlds):
        if status is not None:
            status(f"targeting: world {i + 1} of {worlds}")
        rows.append(one_world(FIRST_SEED + i, customers))
    seconds = time.perf_counter() - t0
    diffs = [r["difference"] for r in rows]
    mean = statistics.fmean(diffs)
    half = float(student_t.ppf(0.975, len(diffs) - 1)) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    response = statistics.fmean(r["true_incremental_orders_response_ranking"] for r in rows)
    uplift = statistics.fmean(r["true_incremental_orders_uplift_ranking"] for r in rows)
    out: dict[str, Metric] = {
        "targeting.worlds": {"value": worlds, "unit": f"seeded brands of {customers} customers (seeds from 7)"},
        "targeting.true_orders_response_ranking": {
            "value": round(response, 1),
            "unit": f"true incremental orders at {REACH_SHARE:.0%} reach, mean over worlds",
        },
        "targeting.true_orders_uplift_ranking": {
            "value": round(uplift, 1),
            "unit": f"true incremental orders at {REACH_SHARE:.0%} reach, mean over worlds",
        },
        "targeting.uplift_minus_response": {"value": round(mean, 1), "unit": "true incremental orders, mean"},
        "targeting.uplift_minus_response_low": {"value": round(mean - half, 1), "unit": "95% t interval over worlds"},
        "targeting.uplift_minus_response_high": {"value": round(mean + half, 1), "unit": "95% t interval over worlds"},
        "targeting.worlds_uplift_ahead": {"value": sum(d > 0 for d in diffs), "unit": f"of {worlds} worlds"},
        "targeting.worlds_uplift_ahead_beyond_one_send": {
            "value": sum(r["difference_95"][0] > 0 for r in rows),
            "unit": f"of {worlds} worlds: ahead with the one-send interval above 0",
        },
        "targeting.seconds": {"value": round(seconds, 1), "unit": "s (generate, train two models, score, per world)"},
    }
    for r in rows:
        out[f"targeting.world_{r['seed']}.difference"] = {
            "value": r["difference"],
            "unit": (
                f"uplift {r['true_incremental_orders_uplift_ranking']} vs response "
                f"{r['true_incremental_orders_response_ranking']} of {r['persons_each']} picked from {r['eligible']}"
            ),
        }
    return out
