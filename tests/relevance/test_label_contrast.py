import numpy as np
import pytest

from fac_lightning.features.table import FeatureTable
from fac_lightning.relevance.label_contrast import label_contrast


def test_enriched_feature_is_found_and_shared_features_are_not():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 100 + [0] * 100)
    rows = []
    for s in range(200):
        if labels[s] == 1 and rng.random() < 0.6:
            rows.append((s, 3))  # fires on 60 % of positives only
        if rng.random() < 0.5:
            rows.append((s, 7))  # fires everywhere equally
        if labels[s] == 0 and rng.random() < 0.6:
            rows.append((s, 5))  # enriched on the negative side
    s, f = map(np.array, zip(*rows))
    table = FeatureTable(200, 10, s, f, np.ones(len(s), np.float32))
    relevant, stats = label_contrast(table, labels, delta=0.0)
    assert relevant.tolist() == [i == 3 for i in range(10)]
    assert stats["q"][3] < 1e-10 and stats["log_odds"][5] < 0


def test_needs_both_sides():
    table = FeatureTable(3, 4, np.array([0]), np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="both"):
        label_contrast(table, np.ones(3), 0.0)
