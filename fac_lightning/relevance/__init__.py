"""Task relevance of SAE features (``relevance.method=llm_judge | label_contrast | all``)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fac_lightning.config import RelevanceConfig
from fac_lightning.features.table import FeatureTable

METHODS = ("llm_judge", "label_contrast", "all")


def select_relevant(cfg: RelevanceConfig, anchor: FeatureTable, labels: np.ndarray, delta: float, rubric: str,
                    make_generator: Callable, cache_file: str | Path) -> tuple[np.ndarray, dict[int, dict]]:
    """Relevant features R as an (F,) bool mask, and a per-feature record (statistics or judge verdicts)."""
    active = anchor.active(delta)
    if cfg.method == "all":
        return active, {}
    if cfg.method == "label_contrast":
        from fac_lightning.relevance.label_contrast import label_contrast

        relevant, stats = label_contrast(anchor, labels, delta, cfg.fdr, cfg.min_positive, cfg.min_log_odds)
        records = {int(f): {k: float(v[f]) for k, v in stats.items()} for f in np.flatnonzero(active)}
        return relevant, records
    if cfg.method == "llm_judge":
        from fac_lightning.relevance.llm_judge import LLMJudge

        judge = LLMJudge(make_generator(), rubric, cfg.spans_shown, cfg.max_new_tokens, cache_file)
        counts = anchor.active_counts(delta)
        candidates = np.flatnonzero(active)
        candidates = candidates[np.argsort(-counts[candidates], kind="stable")][: cfg.max_features]
        records = {int(f): judge.judge(int(f), anchor.spans.get(int(f), [])) for f in candidates}
        relevant = np.zeros(anchor.num_features, dtype=bool)
        relevant[[f for f, r in records.items() if r["relevant"]]] = True
        return relevant, records
    raise ValueError(f"relevance.method={cfg.method!r}: choose from {METHODS}")
