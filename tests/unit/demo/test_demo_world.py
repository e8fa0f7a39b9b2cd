"""The simulated future: responses to a campaign drawn from each person's hidden baseline and uplift."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from cdp.ingest.events import parse_event
from cdp_local.demo import SyntheticBrand
from cdp_local.demo.truth import event_keys

SENT_AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def _split(brand: SyntheticBrand, seed: int) -> tuple[list[str], list[str]]:
    ids = [p.person_id for p in brand.persons]
    random.Random(seed).shuffle(ids)
    half = len(ids) // 2
    return ids[:half], ids[half:]


def _phone_keys(brand: SyntheticBrand, person_ids: list[str]) -> set[str]:
    wanted = set(person_ids)
    return {k for k, p in brand.truth.items() if p in wanted and k.startswith("phone:")}


def test_treated_persons_convert_more_than_the_holdout(brand: SyntheticBrand) -> None:
    # Given half the brand treated (named by the phone keys a platform would hold) and half held out
    treated_ids, holdout_ids = _split(brand, seed=5)
    treated_keys = _phone_keys(brand, treated_ids)
    treated = brand.world.resolve(treated_keys)
    # When the world answers an SMS campaign, three times over
    rates_t, rates_h = [], []
    for rng_seed in (1, 2, 3):
        orders = brand.world.respond(treated_keys, set(holdout_ids), "sms", "cmp-test", SENT_AT, rng_seed)
        buyers = {brand.world.person_for_identifier(k) for e in orders for k in event_keys(e)}
        rates_t.append(len(buyers & treated) / len(treated))
        rates_h.append(len(buyers & set(holdout_ids)) / len(holdout_ids))
    # Then treated conversion beats the holdout every time, by a clear margin on average
    assert all(t > h for t, h in zip(rates_t, rates_h, strict=True))
    assert sum(rates_t) / 3 - sum(rates_h) / 3 > 0.02
    # and the true expected rates agree with that direction
    some = sorted(treated)[:50]
    assert all(
        brand.world.conversion_probability(p, "sms", treated=True)
        >= brand.world.conversion_probability(p, "sms", treated=False)
        for p in some
    )


def test_responses_are_valid_orders_in_the_window_with_known_identifiers(brand: SyntheticBrand) -> None:
    # Given a campaign to one half of the brand
    treated_ids, holdout_ids = _split(brand, seed=9)
    # When the world responds
    orders = brand.world.respond(set(treated_ids), set(holdout_ids), "sms", "cmp-test", SENT_AT, rng_seed=4)
    # Then every response is a valid order in (sent_at, sent_at + 14 days] that maps back to its buyer
    assert orders
    holdout = set(holdout_ids)
    unrecognised = 0
    for event in orders:
        parsed = parse_event(event)
        assert parsed.event_type == "order_placed"
        assert SENT_AT < parsed.occurred_at <= SENT_AT + timedelta(days=14)
        owners = {brand.world.person_for_identifier(k) for k in event_keys(event)} - {None}
        assert len(owners) <= 1
        unrecognised += not owners  # only persons the platform never saw at all buy under a new identifier
        if owners and owners <= holdout:  # the holdout never saw the message, so never used its link
            assert "campaign_id" not in event["properties"]
    assert any(e["properties"].get("campaign_id") == "cmp-test" for e in orders)
    assert unrecognised <= 0.02 * len(orders)


def test_respond_is_deterministic_and_accepts_keys_or_true_ids(brand: SyntheticBrand) -> None:
    # Given the same persons named once by true id and once by their phone keys
    treated_ids, holdout_ids = _split(brand, seed=3)
    with_phone = sorted(brand.world.resolve(_phone_keys(brand, treated_ids)))
    keys = _phone_keys(brand, with_phone)
    # When the world responds to both with the same seed
    by_id = brand.world.respond(set(with_phone), set(holdout_ids), "sms", "cmp-a", SENT_AT, rng_seed=8)
    by_key = brand.world.respond(keys, set(holdout_ids), "sms", "cmp-a", SENT_AT, rng_seed=8)
    # Then the answers are identical
    assert by_id == by_key


def test_unknown_or_shared_identifiers_are_ignored_and_both_groups_means_treated(brand: SyntheticBrand) -> None:
    # Given a shared tablet, an unknown key, and one person named in both groups
    person = brand.persons[0].person_id
    shared = next(iter(sorted(brand.shared_identifiers)))
    # When resolved and answered
    resolved = brand.world.resolve({shared, "phone:+8613000000000", person})
    # Then only the true person is kept, and an empty campaign has no response
    assert resolved == {person}
    assert brand.world.person_for_identifier(shared) is None
    assert brand.world.respond(set(), set(), "sms", "cmp-none", SENT_AT, 0) == []
    both = brand.world.respond({person}, {person}, "sms", "cmp-b", SENT_AT, 0)
    only_treated = brand.world.respond({person}, set(), "sms", "cmp-b", SENT_AT, 0)
    assert both == only_treated


def test_a_channel_the_person_cannot_receive_gives_no_uplift(brand: SyntheticBrand) -> None:
    # Given persons without an e-mail address
    no_email = [p for p in brand.persons if p.email is None][:20]
    # When their conversion under an e-mail campaign is compared with no campaign
    # Then the e-mail cannot move them
    assert no_email
    for person in no_email:
        assert brand.world.conversion_probability(person.person_id, "email", treated=True) == (
            brand.world.conversion_probability(person.person_id, "email", treated=False)
        )
