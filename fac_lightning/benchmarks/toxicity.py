"""Toxicity benchmarks (``benchmark=moderation | toxicchat``): AUPRC (sklearn average precision on P(toxic)) and
precision / recall / F1 at 0.5, as Llama-Guard's and ToxicChat's reports compute them."""

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from fac_lightning.config import BenchmarkConfig
from fac_lightning.data.conversations import load_labelled


def load_benchmark(cfg: BenchmarkConfig, data_dir) -> tuple[list[str], np.ndarray]:
    texts, labels = load_labelled(cfg.source, list(cfg.label_fields), data_dir, cfg.skip_unlabelled)
    if cfg.limit is not None:
        texts, labels = texts[: cfg.limit], labels[: cfg.limit]
    return texts, np.array(labels)


def toxicity_metrics(labels: np.ndarray, p_toxic: np.ndarray, benchmark: BenchmarkConfig) -> dict:
    predicted = (p_toxic >= 0.5).astype(int)
    return {
        "benchmark": benchmark.name, "examples": len(labels), "positives": int(labels.sum()),
        "limit": benchmark.limit,
        "auprc": float(average_precision_score(labels, p_toxic)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
    }
