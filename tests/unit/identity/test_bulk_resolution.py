"""Bulk identity resolution (issue 4, item 8): the vectorized resolver gives exactly what `graph.partition` defines,
on any small history (property), and on the DESIGN scenarios; bad input is reported by line, never dropped silently."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.identifiers.link_rules import DEFAULT_RULES, IdentityRules
from cdp.identifiers.model import IdentifierType
from cdp.identity.bulk import (
    BULK_PERSON_NAMESPACE,
    BulkResolution,
    _factorize,
    key_error,
    person_id_for,
    read_events,
    read_links,
    resolve_events,
    resolve_links,
    write_result,
)
from cdp.identity.graph import partition

NS = "brand-1"
POOL = (
    "phone:+8613800138001",
    "phone:+8613800138002",
    "phone:+8613800138003",
    "phone:+8613800000000",  # blocked
    "email:ann@example.cn",
    "email:bob@example.cn",
    "email:test@example.com",  # blocked
    "device_id:d1",
    "device_id:d2",
    "device_id:d3",
    "device_id:d4",
    "device_id:unknown",  # blocked
    "wechat_openid:wxa:o1",
    "wechat_openid:wxa:o2",
    "wechat_openid:wxb:o1",  # the same OpenID value in another app: another identifier, another bucket
    "wechat_unionid:u1",
    "member_card:m1",
    "member_card:m2",
    "platform_buyer_id:tmall:b1",
    "platform_buyer_id:jd:b1",
)
TYPES = list(IdentifierType)


def _canonical(result: BulkResolution) -> tuple[set[frozenset[str]], set[str]]:
    return set(result.persons()), result.hubs()


def _assert_matches_reference(
    events: list[list[str]],
    rules: IdentityRules,
    quarantined: Collection[str] = (),
    disabled: Collection[tuple[str, str]] = (),
) -> BulkResolution:
    persons, hubs = partition(events, rules, quarantined, disabled)
    result = resolve_events(events, namespace=NS, rules=rules, quarantined=quarantined, disabled=disabled)
    assert _canonical(result) == (set(persons), hubs)
    ids = dict(zip(result.persons(), result.person_ids, strict=True))
    assert all(ids[p] == person_id_for(NS, min(p)) for p in persons)
    flagged = {result.persons()[i]: reasons for i, reasons in result.over_limit.items()}
    assert flagged == {p: rules.over_limit(p) for p in persons if rules.over_limit(p)}
    assert result.summary.nodes == sum(map(len, persons)) + len(hubs)
    assert (result.summary.persons, result.summary.hubs) == (len(persons), len(hubs))
    return result


@st.composite
def custom_rules(draw: st.DrawFn) -> IdentityRules:
    pairs = st.tuples(st.sampled_from(TYPES), st.sampled_from(TYPES))
    same_type = st.sampled_from(TYPES).map(lambda t: (t, t))  # linked, but never a strictly higher neighbour
    links = draw(st.none() | st.lists(pairs, min_size=1, max_size=12))
    return IdentityRules(
        priority=tuple(draw(st.permutations(TYPES))),
        limits={t: draw(st.integers(1, 3)) for t in TYPES},
        links=None if links is None else links + draw(st.lists(same_type, min_size=1, max_size=3)),
        hub_max_links=draw(st.integers(1, 4)),
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[str]], IdentityRules, set[str], set[tuple[str, str]]]:
    rules = draw(st.just(DEFAULT_RULES) | custom_rules())
    events = draw(st.lists(st.lists(st.sampled_from(POOL), min_size=1, max_size=5), min_size=1, max_size=12))
    quarantined = draw(st.sets(st.sampled_from(POOL), max_size=2))
    edges = sorted(set().union(*(rules.event_edges(k for k in e if k not in rules.blocked_values) for e in events)))
    disabled = draw(st.sets(st.sampled_from(edges), max_size=3)) if edges else set()
    if edges and draw(st.booleans()):
        disabled.add(edges[0][::-1])  # cut given the wrong way round: the reference ignores it, so must bulk
    return events, rules, quarantined, disabled


@settings(max_examples=250, deadline=None)
@given(history=histories())
def test_bulk_gives_what_the_reference_partition_defines(
    history: tuple[list[list[str]], IdentityRules, set[str], set[tuple[str, str]]],
) -> None:
    # Given any small history: shared devices, blocked values, scoped OpenIDs, same-type pairs, custom rules,
    # manual quarantine and disabled edges
    events, rules, quarantined, disabled = history
    # When it is resolved in bulk, Then persons, hubs, person ids and over-limit flags are the reference's
    _assert_matches_reference(events, rules, quarantined, disabled)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.lists(st.sampled_from(POOL), min_size=2, max_size=2), min_size=1, max_size=15),
    order=st.randoms(use_true_random=False),
)
def test_links_in_any_order_and_direction_give_the_same_persons_and_ids(events: list[list[str]], order: Any) -> None:
    # Given links, and the same links shuffled with some written b -> a
    shuffled = [list(e) if order.random() < 0.5 else e[::-1] for e in events]
    order.shuffle(shuffled)
    # When both are resolved as links
    first = resolve_links([e[0] for e in events], [e[1] for e in events], namespace=NS)
    second = resolve_links([e[0] for e in shuffled], [e[1] for e in shuffled], namespace=NS)
    # Then the persons, their ids and the hubs are the same
    assert dict(zip(first.persons(), first.person_ids, strict=True)) == dict(
        zip(second.persons(), second.person_ids, strict=True)
    )
    assert first.hubs() == second.hubs()


KEY_HEADS = ("phone:", "email:", "device_id:", "wechat_openid:", "platform_buyer_id:", "phone", "fax:", "", ":")


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(st.tuples(st.sampled_from(KEY_HEADS), st.text("ab:", max_size=4)).map("".join), min_size=1))
def test_malformed_keys_are_rejected_exactly_when_key_error_says_so(keys: list[str]) -> None:
    # Given links from keys of every shape (unknown types, no value, scoped types without scope or value)
    # When resolved, Then a link is rejected exactly when its key is malformed, and reported with that key
    result = resolve_links(keys, ["phone:+8613800138001"] * len(keys), namespace=NS)
    assert [p.value for p in result.problems] == [k for k in keys if key_error(k)]


def _event_line(n: int, *identifiers: dict[str, str]) -> str:
    event = {
        "event_id": f"h{n}",
        "event_type": "identify",
        "source": "pos",
        "brand_id": "b",
        "occurred_at": "2025-06-01T10:00:00+08:00",
        "identifiers": list(identifiers),
    }
    return json.dumps(event)


def test_design_scenario_three_platforms_are_one_person_and_a_store_tablet_is_not(tmp_path: Path) -> None:
    # Given a history export: platform A knows a phone and a device id, platform B an e-mail and the same device
    # id, platform C the same e-mail and a WeChat OpenID; and a store tablet 300 customers signed in on
    phone = {"type": "phone", "value": "138 0013 8000"}  # as the channel sent it: normalized to E.164
    device = {"type": "device_id", "value": "DEV-A"}
    email = {"type": "email", "value": "Ann@Example.cn"}
    openid = {"type": "wechat_openid", "value": "oX1", "scope": "WX-OA"}
    tablet = {"type": "device_id", "value": "store-tablet-7"}
    lines = [_event_line(1, phone, device), _event_line(2, email, device), _event_line(3, email, openid)]
    lines += [_event_line(10 + n, {"type": "phone", "value": f"139{n:08d}"}, tablet) for n in range(300)]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    # When it is resolved in bulk
    read = read_events(path)
    result = resolve_events(read.events, namespace=NS, lines=read.lines)
    # Then A, B and C are one person, under the keys the online path uses
    persons = result.persons()
    one = {"phone:+8613800138000", "device_id:dev-a", "email:ann@example.cn", "wechat_openid:wx-oa:oX1"}
    assert frozenset(one) in persons
    # And the tablet is a hub that links nobody: each customer is a person of their own
    assert result.hubs() == {"device_id:store-tablet-7"}
    assert sum(1 for p in persons if len(p) == 1 and next(iter(p)).startswith("phone:+86139")) == 300
    assert (result.summary.persons, result.summary.hubs, result.summary.rejected) == (301, 1, 0)


def test_blocked_values_link_nobody_and_are_no_identifiers() -> None:
    # Given two customers whose app sent a junk device id and a test e-mail
    events = [
        ["phone:+8613800138001", "device_id:unknown"],
        ["phone:+8613800138002", "device_id:unknown", "email:test@example.com"],
    ]
    # When resolved, Then they stay two persons and the junk values are nowhere
    result = _assert_matches_reference(events, DEFAULT_RULES)
    assert set(result.persons()) == {frozenset({"phone:+8613800138001"}), frozenset({"phone:+8613800138002"})}
    assert result.summary.blocked == 2


def test_two_identifiers_of_one_type_on_an_event_do_not_link() -> None:
    # Given an order form with two phone numbers (a gift: the buyer's and the recipient's)
    result = _assert_matches_reference([["phone:+8613800138001", "phone:+8613800138002"]], DEFAULT_RULES)
    # Then they are two persons
    assert result.summary.persons == 2 and not result.hubs()


def test_openids_count_per_app_so_one_device_with_two_apps_is_no_hub() -> None:
    # Given a phone that opened the mini-program (app wxa) and the official account (app wxb): one OpenID each
    own = [["device_id:d1", "wechat_openid:wxa:o1"], ["device_id:d1", "wechat_openid:wxb:o9"]]
    # And a device on which two OpenIDs of the same app signed in
    shared = [["device_id:d2", "wechat_openid:wxa:o1"], ["device_id:d2", "wechat_openid:wxa:o2"]]
    # When resolved, Then only the second device is a hub
    result = _assert_matches_reference(own + shared, DEFAULT_RULES)
    assert result.hubs() == {"device_id:d2"}


def test_disabled_edge_splits_and_manual_quarantine_makes_a_hub() -> None:
    # Given one person made of a phone, a device and an e-mail, an unbind of the e-mail from the device,
    # and a member card an operator quarantined by hand
    events = [
        ["phone:+8613800138001", "device_id:d1"],
        ["email:ann@example.cn", "device_id:d1"],
        ["phone:+8613800138001", "member_card:m1"],
    ]
    result = _assert_matches_reference(
        events, DEFAULT_RULES, quarantined={"member_card:m1"}, disabled={("device_id:d1", "email:ann@example.cn")}
    )
    # Then the e-mail is a person of its own and the member card a hub
    assert set(result.persons()) == {
        frozenset({"phone:+8613800138001", "device_id:d1"}),
        frozenset({"email:ann@example.cn"}),
    }
    assert result.hubs() == {"member_card:m1"}


def test_same_type_links_allowed_by_custom_rules_never_make_a_hub() -> None:
    # Given rules that also link two device ids seen together (a device migration), and a device seen with two
    rules = IdentityRules(
        links=[("device_id", "device_id"), ("phone", "device_id")], limits={IdentifierType.DEVICE_ID: 1}
    )
    events = [
        ["device_id:d3", "device_id:d1"],
        ["device_id:d3", "device_id:d2"],
        ["phone:+8613800138001", "device_id:d1"],
    ]
    # When resolved, Then d3 is no hub (only strictly more trusted neighbours count) and all is one person
    result = _assert_matches_reference(events, rules)
    assert not result.hubs() and result.summary.persons == 1


def test_a_person_with_four_devices_is_flagged_over_the_limit() -> None:
    # Given a phone seen on four devices (the limit is three): no device is a hub, the phone holds them all
    events = [["phone:+8613800138001", f"device_id:d{n}"] for n in range(4)]
    # When resolved, Then the person is flagged with the reason IdentityRules.over_limit gives
    result = _assert_matches_reference(events, DEFAULT_RULES)
    assert result.over_limit == {0: ["device_id"]} and result.summary.persons_over_limit == 1


def test_keys_compare_by_type_name_first() -> None:
    # The smallest-key search compares only keys of a person's alphabetically first type: that needs every pair of
    # type names to differ before one of them ends (no name is a prefix of another)
    names = [t.value for t in IdentifierType]
    assert not [(a, b) for a in names for b in names if a != b and b.startswith(a)]


def test_person_id_is_uuid5_of_the_namespace_and_the_smallest_key() -> None:
    result = resolve_links(["phone:+8613800138001"], ["device_id:zz"], namespace=NS)
    expected = uuid.uuid5(BULK_PERSON_NAMESPACE, f"{NS}#device_id:zz").hex
    assert result.person_ids == [expected] and list(result.min_keys) == ["device_id:zz"]


def test_bad_event_lines_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    # Given a history file with good lines, a line that is not JSON, an invalid phone, an OpenID without its app,
    # an event without identifiers and a blank line
    good = _event_line(1, {"type": "phone", "value": "13800138001"}, {"type": "device_id", "value": "d1"})
    lines = [
        good,
        "{not json",
        _event_line(3, {"type": "phone", "value": "12345"}, {"type": "device_id", "value": "d2"}),
        _event_line(4, {"type": "wechat_openid", "value": "o1"}),
        json.dumps({"event_id": "e5", "identifiers": []}),
        "",
        _event_line(7, {"type": "email", "value": "bob@example.cn"}, {"type": "device_id", "value": "d1"}),
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    # When it is read and resolved
    read = read_events(path)
    result = resolve_events(read.events, namespace=NS, lines=read.lines, problems=read.problems)
    # Then every bad line is reported with its number and what is wrong, and the good lines are resolved
    reported = {(p.line, p.field) for p in result.problems}
    assert reported == {(2, None), (3, "identifiers.0"), (4, "identifiers.0"), (5, "identifiers")}
    assert "phone" in next(p.message for p in result.problems if p.line == 3)
    assert (read.rows, read.skipped, result.summary.rejected) == (6, 4, 4)
    # And the event with the invalid phone is left out whole (the ingest API would reject it): d2 is unknown
    assert set(result.persons()) == {frozenset({"phone:+8613800138001", "device_id:d1", "email:bob@example.cn"})}


def test_bad_link_rows_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    # Given a links CSV with a good row, an unknown identifier type, a missing column, an OpenID without its app
    # and an empty value
    path = tmp_path / "links.csv"
    path.write_text(
        "a,b\n"
        "phone:+8613800138001,device_id:d1\n"
        "fax:123,device_id:d1\n"
        "phone:+8613800138002\n"
        "wechat_openid:o1,phone:+8613800138001\n"
        "device_id:d3,\n"
    )
    # When it is read and resolved
    read = read_links(path)
    result = resolve_links(read.a, read.b, namespace=NS, lines=read.lines, problems=read.problems)
    # Then the bad rows are reported by line, and only the good one made a person
    assert sorted((p.line, p.field) for p in result.problems) == [(3, "a"), (4, None), (5, "a"), (6, "b")]
    assert set(result.persons()) == {frozenset({"phone:+8613800138001", "device_id:d1"})}
    assert read.rows == 5 and result.summary.rejected == 4


def test_links_read_from_jsonl_and_csv_agree(tmp_path: Path) -> None:
    rows = [("phone:+8613800138001", "device_id:d1"), ("email:ann@example.cn", "device_id:d1")]
    (tmp_path / "links.jsonl").write_text("".join(json.dumps({"a": a, "b": b}) + "\n" for a, b in rows))
    (tmp_path / "links.csv").write_text("b,a\n" + "".join(f"{b},{a}\n" for a, b in rows))  # any column order
    from_jsonl, from_csv = read_links(tmp_path / "links.jsonl"), read_links(tmp_path / "links.csv")
    assert (from_jsonl.a, from_jsonl.b) == (from_csv.a, from_csv.b) == ([r[0] for r in rows], [r[1] for r in rows])


def test_result_written_as_csv_has_one_row_per_identifier(tmp_path: Path) -> None:
    result = resolve_events(
        [["phone:+8613800138001", "device_id:t"], ["phone:+8613800138002", "device_id:t"]], namespace=NS
    )
    written = write_result(result, tmp_path / "persons.csv")
    with written.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["identifier"]: (bool(r["person_id"]), r["hub"]) for r in rows} == {
        "phone:+8613800138001": (True, "false"),
        "phone:+8613800138002": (True, "false"),
        "device_id:t": (False, "true"),
    }


def test_links_and_result_round_trip_through_parquet(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    # Given a Parquet links file whose second row lacks its a
    links = tmp_path / "links.parquet"
    duckdb.sql(
        "SELECT * FROM (VALUES ('phone:+8613800138001', 'device_id:d1'), (NULL, 'device_id:d2')) AS t(a, b)"
    ).write_parquet(str(links))
    # When it is read, resolved and written as Parquet
    read = read_links(links)
    result = resolve_links(read.a, read.b, namespace=NS, lines=read.lines, problems=read.problems)
    written = write_result(result, tmp_path / "persons.parquet")
    # Then the bad row is reported by its row number, and the result reads back
    assert [(p.line, p.field) for p in result.problems] == [(2, "a")]
    rows = sorted(duckdb.read_parquet(str(written)).fetchall())
    pid = result.person_ids[0]
    assert rows == [("device_id:d1", pid, False), ("phone:+8613800138001", pid, False)]


def test_module_imports_without_numpy_and_scipy_as_on_lambda() -> None:
    # Given an interpreter where numpy and scipy cannot be imported (the domain layer on Lambda has neither)
    code = "import sys; sys.modules['numpy'] = sys.modules['scipy'] = None; import cdp.identity.bulk"
    # Then the module still imports: they are imported by the functions that need them
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603 - our own interpreter


class _Colliding(str):
    """A key whose hash is forced, to drive the resolver into hash collisions."""

    forced: int

    def __new__(cls, value: str, forced: int) -> _Colliding:
        obj = super().__new__(cls, value)
        obj.forced = forced
        return obj

    def __hash__(self) -> int:
        return self.forced

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


@pytest.mark.parametrize(
    "forced",
    [
        [16, 17, 16, 18, 17, 16, 19, 18],  # distinct hashes sharing their high bits: grouped by the whole hash
        [5, 5, 5, 7, 5, 5, 7, 7],  # distinct keys with one hash: the exact path keeps them apart
    ],
)
def test_factorize_is_exact_under_hash_collisions(forced: list[int]) -> None:
    values = ["a", "b", "a", "c", "b", "a", "d", "c"]
    occurrences = np.array([_Colliding(v, h) for v, h in zip(values, forced, strict=True)], dtype=object)
    keys, codes, _ = _factorize(occurrences)
    assert [str(k) for k in keys] == ["a", "b", "c", "d"]
    assert codes.tolist() == [0, 1, 0, 2, 1, 0, 3, 2]
