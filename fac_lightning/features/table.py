"""FeatureTable: sparse per-sample feature scores g_i(x) of one data set, and top-activating spans per feature.

Stored as ``table.npz`` (COO triplets: sample, feature, score > floor) + ``spans.json`` (per feature, its top
samples with the span of up to 32 tokens ending at the argmax token, which is marked ``«like this»``; the first few
also with the feature's activation on each of their tokens).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from fac_lightning.files import read_json


@dataclass
class Span:
    score: float
    sample: int
    text: str
    """Up to ``span_tokens`` tokens ending at the argmax token, which is wrapped in « »."""
    position: int = -1
    """The argmax token's index in the sample's tokens (-1 in tables scored before it was kept)."""
    tokens: list[list] | None = None
    """The span's tokens, each ``[text, activation of the feature]`` (the report shades them); kept for the first
    ``features.shaded_spans`` spans of a feature, None on the others."""


@dataclass
class FeatureTable:
    num_samples: int
    num_features: int
    sample_idx: np.ndarray
    feature_idx: np.ndarray
    score: np.ndarray
    floor: float = 0.0
    """Scores <= floor were not stored; thresholds below it are meaningless."""
    spans: dict[int, list[Span]] = field(default_factory=dict)

    def matrix(self) -> sparse.csc_matrix:
        """(samples x features) sparse matrix of scores."""
        return sparse.csc_matrix((self.score, (self.sample_idx, self.feature_idx)),
                                 shape=(self.num_samples, self.num_features))

    def _check(self, delta: float) -> None:
        if delta < self.floor:
            raise ValueError(f"threshold delta={delta} is below the table's storage floor {self.floor}")

    def score_range(self) -> str:
        """The stored scores' range, for messages about thresholds (``[min, max]``, or none stored)."""
        if not len(self.score):
            return f"no score above features.floor={self.floor:g}"
        return f"[{float(self.score.min()):.3g}, {float(self.score.max()):.3g}]"

    def active_counts(self, delta: float = 0.0, samples: np.ndarray | None = None) -> np.ndarray:
        """(F,) number of samples (optionally a subset) in which each feature's score exceeds ``delta``."""
        self._check(delta)
        keep = self.score > delta
        if samples is not None:
            keep &= np.isin(self.sample_idx, samples)
        return np.bincount(self.feature_idx[keep], minlength=self.num_features)

    def active(self, delta: float = 0.0, samples: np.ndarray | None = None) -> np.ndarray:
        """(F,) bool: features that some sample activates above ``delta`` (the paper's F(.) before relevance)."""
        return self.active_counts(delta, samples) > 0

    def mean_active_score(self, delta: float = 0.0) -> np.ndarray:
        """(F,) mean score over the samples where the feature is active (0 where it never is)."""
        keep = self.score > delta
        sums = np.bincount(self.feature_idx[keep], weights=self.score[keep], minlength=self.num_features)
        return sums / np.maximum(self.active_counts(delta), 1)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        np.savez_compressed(folder / "table.npz", sample_idx=self.sample_idx, feature_idx=self.feature_idx,
                            score=self.score, shape=np.array([self.num_samples, self.num_features]),
                            floor=np.array(self.floor))
        spans = {str(f): [s.__dict__ for s in spans] for f, spans in self.spans.items()}
        (folder / "spans.json").write_text(json.dumps(spans))

    @classmethod
    def load(cls, folder: str | Path) -> "FeatureTable":
        from fac_lightning.artifacts import verify_artifact

        folder = verify_artifact(folder, "feature table")
        z = np.load(folder / "table.npz")
        spans_file = folder / "spans.json"
        spans = read_json(spans_file) if spans_file.exists() else {}
        return cls(int(z["shape"][0]), int(z["shape"][1]), z["sample_idx"], z["feature_idx"], z["score"],
                   float(z["floor"]), {int(f): [Span(**s) for s in v] for f, v in spans.items()})
