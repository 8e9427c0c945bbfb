"""Property tests of FAC and missing features on random sparse tables (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fac_lightning.features.fac import fac, missing_features
from fac_lightning.features.table import FeatureTable

F = 40


def table_from(entries: list[tuple[int, int, float]], n: int) -> FeatureTable:
    if not entries:
        return FeatureTable(n, F, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
    s, f, v = map(np.array, zip(*entries))
    return FeatureTable(n, F, s.astype(np.int32), f.astype(np.int32), v.astype(np.float32))


entry = st.tuples(st.integers(0, 19), st.integers(0, F - 1), st.floats(0.01, 5.0))
tables = st.lists(entry, min_size=1, max_size=120, unique_by=lambda e: (e[0], e[1])).map(lambda e: table_from(e, 20))
deltas = st.sampled_from([0.0, 0.5, 1.0, 2.0])
relevants = st.one_of(st.none(), st.lists(st.booleans(), min_size=F, max_size=F).map(np.array))


def subset(table: FeatureTable, samples: np.ndarray) -> FeatureTable:
    keep = np.isin(table.sample_idx, samples)
    return FeatureTable(table.num_samples, F, table.sample_idx[keep], table.feature_idx[keep], table.score[keep])


@settings(max_examples=200, deadline=None)
@given(tables, deltas, relevants)
def test_fac_of_a_dataset_against_itself_is_one(table, delta, relevant):
    value = fac(table, table, delta, relevant)
    target = table.active(delta) if relevant is None else table.active(delta) & relevant
    assert np.isnan(value) if not target.any() else value == 1.0
    assert len(missing_features(table, table, delta, relevant)) == 0


@settings(max_examples=200, deadline=None)
@given(tables, tables, deltas, relevants, st.integers(1, 19))
def test_fac_is_monotone_under_adding_samples(gen, anchor, delta, relevant, cut):
    smaller = subset(gen, np.arange(cut))
    for weighting in ("binary", "magnitude"):
        small, full = fac(smaller, anchor, delta, relevant, weighting), fac(gen, anchor, delta, relevant, weighting)
        assert (np.isnan(small) and np.isnan(full)) or small <= full + 1e-9
    assert set(missing_features(anchor, gen, delta, relevant)) <= set(missing_features(anchor, smaller, delta,
                                                                                        relevant))


def test_fac_counts_relevant_anchor_features_covered():
    anchor = table_from([(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0), (3, 4, 3.0)], 4)
    gen = table_from([(0, 1, 2.0), (0, 4, 0.2), (1, 9, 1.0)], 2)
    relevant = np.zeros(F, bool)
    relevant[[1, 2, 4]] = True
    assert fac(gen, anchor, 0.0, relevant) == 2 / 3
    assert fac(gen, anchor, 0.5, relevant) == 1 / 3  # feature 4 is below delta in gen
    assert fac(gen, anchor, 0.0, None) == 2 / 4
    assert list(missing_features(anchor, gen, 0.0, relevant)) == [2]
    assert fac(gen, anchor, 0.0, relevant, "magnitude") == (1.0 + 3.0) / (1.0 + 1.0 + 3.0)
    assert fac(gen, anchor, 0.0, relevant, "frequency") == (1 + 0 + 1) / 3  # p_gen 1/2 >= p_anchor 1/4: capped
