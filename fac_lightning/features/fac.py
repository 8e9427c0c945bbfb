"""Feature Activation Coverage (paper §5.2, App. L.6) and missing features (eq. 6).

F(D) = features that at least one sample of D activates above delta, restricted to the relevant set R.
FAC(gen; anchor) = |F(gen) ∩ F(anchor) ∩ R| / |F(anchor) ∩ R|.

Weighted variants (our reading of App. L.6, which gives no formula):
- ``frequency``: mean over i in F(anchor) ∩ R of min(1, p_gen(i) / p_anchor(i)), p = fraction of samples
  activating i; 1 only if every feature is covered at least as often as in the anchor (so it is <= binary FAC).
- ``magnitude``: anchor features weighted by their mean activation on the anchor.
"""

import numpy as np

from fac_lightning.features.table import FeatureTable

WEIGHTINGS = ("binary", "frequency", "magnitude")


def relevant_anchor_features(anchor: FeatureTable, delta: float, relevant: np.ndarray | None) -> np.ndarray:
    """(F,) bool: F(anchor) ∩ R."""
    active = anchor.active(delta)
    return active if relevant is None else active & relevant


def fac(gen: FeatureTable, anchor: FeatureTable, delta: float = 0.0, relevant: np.ndarray | None = None,
        weighting: str = "binary") -> float:
    if gen.num_features != anchor.num_features:
        raise ValueError(f"tables come from different SAEs ({gen.num_features} vs {anchor.num_features} features)")
    target = relevant_anchor_features(anchor, delta, relevant)
    if not target.any():
        return float("nan")
    if weighting == "binary":
        return float((gen.active(delta) & target).sum() / target.sum())
    if weighting == "frequency":
        p_gen = gen.active_counts(delta) / max(gen.num_samples, 1)
        p_anchor = anchor.active_counts(delta) / max(anchor.num_samples, 1)
        return float(np.minimum(1.0, p_gen[target] / p_anchor[target]).mean())
    if weighting == "magnitude":
        weight = anchor.mean_active_score(delta)[target]
        return float((weight * gen.active(delta)[target]).sum() / weight.sum())
    raise ValueError(f"FAC weighting {weighting!r}: choose from {WEIGHTINGS}")


def missing_features(anchor: FeatureTable, seed: FeatureTable, delta: float = 0.0,
                     relevant: np.ndarray | None = None) -> np.ndarray:
    """Feature ids in F(anchor) ∩ R \\ F(seed), most frequent on the anchor first."""
    missing = relevant_anchor_features(anchor, delta, relevant) & ~seed.active(delta)
    ids = np.flatnonzero(missing)
    return ids[np.argsort(-anchor.active_counts(delta)[ids], kind="stable")]
