"""The identity graph as pure functions: hubs and persons from edges (the reference the online path must match)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cdp.identifiers.link_rules import IdentityRules


def higher_neighbours(edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """low -> the higher-priority identifiers events linked it to (edges are (low, high))."""
    out: dict[str, set[str]] = {}
    for low, high in edges:
        out.setdefault(low, set()).add(high)
    return out


def find_hubs(up: Mapping[str, Iterable[str]], rules: IdentityRules) -> set[str]:
    return {key for key, highs in up.items() if rules.is_hub(key, highs)}


def components(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[frozenset[str]]:
    """Connected components (union-find), each a frozenset, sorted by their highest-priority-free minimum key."""
    parent: dict[str, str] = {n: n for n in nodes}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        if a in parent and b in parent:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, set[str]] = {}
    for n in parent:
        groups.setdefault(root(n), set()).add(n)
    return sorted((frozenset(g) for g in groups.values()), key=min)


def partition(
    events: Iterable[Iterable[str]],
    rules: IdentityRules,
    quarantined: Iterable[str] = (),
    disabled: Iterable[tuple[str, str]] = (),
) -> tuple[list[frozenset[str]], set[str]]:
    """Persons (identifier sets) and hubs from the identifiers of each event, in any order.

    `quarantined` are identifiers marked shared by hand; `disabled` are (low, high) edges an unmerge or unbind cut.
    """
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for keys in events:
        usable = [k for k in keys if k not in rules.blocked_values]
        nodes.update(usable)
        edges |= rules.event_edges(usable)
    hubs = find_hubs(higher_neighbours(edges), rules) | (set(quarantined) & nodes)
    cut = set(disabled)
    live = [(a, b) for a, b in edges if a not in hubs and b not in hubs and (a, b) not in cut]
    return components(nodes - hubs, live), hubs
