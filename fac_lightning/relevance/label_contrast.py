"""Judge-free relevance: features enriched on the task-positive side of the anchor set.

For each feature active on the anchor, a one-sided Fisher exact test asks whether it fires on a larger share of
positive (label 1) than negative (label 0) samples; p-values are corrected with Benjamini-Hochberg and a feature is
relevant when q < fdr, its smoothed log-odds ratio is at least ``min_log_odds`` (0.5: odds ~1.65x higher on the
positive side, so that features firing almost everywhere are not called relevant on sample size alone) and it fires
on >= ``min_positive`` positive samples.
The one-sided Fisher p-value is the hypergeometric upper tail, computed for all features at once.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

from fac_lightning.checks import at_least, within
from fac_lightning.features.table import FeatureTable
from fac_lightning.relevance import RELEVANCE, RelevanceConfig, RelevanceMethod


@dataclass
class LabelContrastConfig(RelevanceConfig):
    fdr: float = 0.05
    """Benjamini-Hochberg false discovery rate for the one-sided Fisher exact test."""
    min_positive: int = 3
    """A feature must fire on at least this many task-positive anchor samples."""
    min_log_odds: float = 0.5
    """Minimum smoothed log-odds ratio (positive vs other side), the effect size (0.5: odds ~1.65x higher on the
    task-positive side)."""

    def __post_init__(self):
        within(self, "fdr", 0, 1, low_open=True)
        at_least(self, 1, "min_positive")


@RELEVANCE.register("label_contrast", LabelContrastConfig)
class LabelContrast(RelevanceMethod):
    def select(self, anchor, labels, delta, rubric, make_generator, cache_file):
        relevant, stats_ = label_contrast(anchor, labels, delta, self.cfg.fdr, self.cfg.min_positive,
                                          self.cfg.min_log_odds)
        records = {int(f): {k: float(v[f]) for k, v in stats_.items()} for f in np.flatnonzero(anchor.active(delta))}
        return relevant, records


def label_contrast(table: FeatureTable, labels: np.ndarray, delta: float, fdr: float = 0.05,
                   min_positive: int = 3, min_log_odds: float = 0.5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns (relevant (F,) bool, per-feature statistics)."""
    labels = np.asarray(labels).astype(bool)
    if len(labels) != table.num_samples:
        raise ValueError(f"{len(labels)} labels for a table of {table.num_samples} samples")
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("label_contrast needs both task-positive and negative anchor samples")
    pos = table.active_counts(delta, np.flatnonzero(labels))
    neg = table.active_counts(delta, np.flatnonzero(~labels))
    tested = (pos + neg) > 0
    p = np.ones(table.num_features)
    # P(X >= pos) for X ~ Hypergeom(population n1+n0, successes pos+neg, draws n1)
    p[tested] = stats.hypergeom.sf(pos[tested] - 1, n1 + n0, (pos + neg)[tested], n1)
    q = np.ones(table.num_features)
    q[tested] = stats.false_discovery_control(p[tested], method="bh")
    log_odds = np.log((pos + 0.5) / (n1 - pos + 0.5)) - np.log((neg + 0.5) / (n0 - neg + 0.5))
    relevant = tested & (q < fdr) & (log_odds >= min_log_odds) & (pos >= min_positive)
    rate_diff = pos / n1 - neg / n0
    return relevant, {"positive": pos, "negative": neg, "p": p, "q": q, "log_odds": log_odds, "rate_diff": rate_diff}
