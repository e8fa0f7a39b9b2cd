"""Rows for training and scoring: every person's history, and point-in-time feature matrices built from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from cdp.models.features import FEATURE_NAMES, feature_vector, features_as_of
from cdp.models.labels import LabeledSet, PersonHistory
from cdp.profile.ports import ProfileReader


def load_histories(reader: ProfileReader) -> list[PersonHistory]:
    """Every surviving profile with its timeline (fine for a brand's sample; at scale this reads an export)."""
    return [PersonHistory(p, [entry.event for entry in timeline]) for p, timeline in reader.scan_with_timelines(0, 1)]


def feature_matrix(people: Sequence[PersonHistory], as_of: Sequence[datetime] | datetime) -> NDArray[np.float64]:
    """Point-in-time features of each person (one `as_of` for all, or one per person), columns in FEATURE_NAMES."""
    moments = [as_of] * len(people) if isinstance(as_of, datetime) else list(as_of)
    rows = [feature_vector(features_as_of(h.profile, h.events, at)) for h, at in zip(people, moments, strict=True)]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))


def build_matrix(
    histories: Sequence[PersonHistory], labeled: LabeledSet
) -> tuple[NDArray[np.float64], NDArray[np.int_]]:
    """Each labeled row's features as of its own `as_of`, and its label."""
    by_person = {h.profile.person_id: h for h in histories}
    people = [by_person[ex.person_id] for ex in labeled.examples]
    x = feature_matrix(people, [ex.as_of for ex in labeled.examples])
    return x, np.asarray([ex.label for ex in labeled.examples], dtype=np.int_)
