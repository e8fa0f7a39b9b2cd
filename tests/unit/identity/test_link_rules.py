"""Configurable resolution rules: which identifier pairs link, per-type limits, junk values and hubs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cdp.identifiers.link_rules import IdentityRules
from cdp.identity.graph import partition

PHONE, PHONE_2 = "phone:+8613800138001", "phone:+8613900139002"
EMAIL, DEVICE, OPENID = "email:ann@example.cn", "device_id:dev-a", "wechat_openid:wx-oa:o1"

SEED_LINKS = IdentityRules(links=[("phone", "device_id"), ("email", "device_id"), ("email", "wechat_openid")])


def test_only_the_configured_pairs_link() -> None:
    # Given rules where phone+device, e-mail+device and e-mail+OpenID link, and nothing else
    # When the seed scenario arrives (A: phone+device, B: e-mail+device, C: e-mail+OpenID)
    persons, hubs = partition([[PHONE, DEVICE], [EMAIL, DEVICE], [EMAIL, OPENID]], SEED_LINKS)
    # Then A, B and C are one person
    assert persons == [frozenset({PHONE, DEVICE, EMAIL, OPENID})] and not hubs
    # But a phone and an e-mail seen together (not a configured pair) stay apart
    persons, _ = partition([[PHONE, EMAIL]], SEED_LINKS)
    assert len(persons) == 2


def test_by_default_two_identifiers_of_one_type_never_link() -> None:
    # Given an order that carries the buyer's and the gift recipient's phones
    persons, _ = partition([[PHONE, PHONE_2]], IdentityRules())
    # Then they stay two persons
    assert len(persons) == 2


def test_junk_values_link_nothing() -> None:
    # Given two customers who both typed the all-zero device id
    zero = "device_id:00000000-0000-0000-0000-000000000000"
    persons, hubs = partition([[PHONE, zero], [PHONE_2, zero]], IdentityRules())
    # Then they are two persons, and the junk value is no identifier of anyone
    assert sorted(persons, key=min) == [frozenset({PHONE}), frozenset({PHONE_2})] and not hubs


def test_an_identifier_linking_more_persons_than_the_limits_allow_is_a_hub() -> None:
    # Given a family iPad used with two phones (at most one phone per person)
    persons, hubs = partition([[PHONE, DEVICE], [PHONE_2, DEVICE]], IdentityRules())
    # Then the iPad is quarantined and the two phones stay two persons
    assert hubs == {DEVICE} and sorted(persons, key=min) == [frozenset({PHONE}), frozenset({PHONE_2})]
    # And with a limit of two phones per person the same evidence is one person
    relaxed = IdentityRules(limits={**IdentityRules().limits, "phone": 2})
    persons, hubs = partition([[PHONE, DEVICE], [PHONE_2, DEVICE]], relaxed)
    assert not hubs and persons == [frozenset({PHONE, PHONE_2, DEVICE})]


def test_a_phone_with_many_devices_is_not_a_hub() -> None:
    # Given one phone seen with five devices over the years (devices are less trusted than phones)
    devices = [f"device_id:d{i}" for i in range(5)]
    persons, hubs = partition([[PHONE, d] for d in devices], IdentityRules())
    # Then it is one person holding all of them (flagged over the device limit, not split)
    assert not hubs and persons == [frozenset({PHONE, *devices})]
    assert IdentityRules().over_limit(persons[0]) == ["device_id"]


def test_bad_rules_are_rejected_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="priority must list every identifier type"):
        IdentityRules(priority=["phone"])
    with pytest.raises(ValidationError, match="exactly two identifier types"):
        IdentityRules(links=[("phone", "email", "device_id")])
    with pytest.raises(ValidationError, match="limits must be at least 1"):
        IdentityRules(limits={"phone": 0})
