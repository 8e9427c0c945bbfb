"""Text-space diversity metrics beside FAC (paper Fig. 9): distinct-n, n-gram entropy, self-BLEU, embedding spread."""

import math
import random
from collections import Counter

import numpy as np
import sacrebleu


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def _ngrams(texts: list[str], n: int) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        words = _tokens(text)
        counts.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return counts


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams / all n-grams over the data set (Li et al. 2016)."""
    counts = _ngrams(texts, n)
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def ngram_entropy(texts: list[str], n: int) -> float:
    """Shannon entropy (nats) of the data set's n-gram distribution."""
    counts = _ngrams(texts, n)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values()) if total else 0.0


def self_bleu(texts: list[str], max_samples: int = 200, seed: int = 0) -> float:
    """Mean sentence BLEU-4 (sacrebleu, 0-1) of each text against all others; lower = more diverse (Zhu et al.
    2018). At most ``max_samples`` texts (sampled with ``seed``) are used as hypotheses and references."""
    if len(texts) < 2:
        return 0.0
    sample = random.Random(seed).sample(texts, min(max_samples, len(texts)))
    scores = [sacrebleu.sentence_bleu(t, sample[:i] + sample[i + 1 :]).score for i, t in enumerate(sample)]
    return float(np.mean(scores) / 100)


def mean_pairwise_cosine_distance(embeddings_ND: np.ndarray) -> float:
    """Mean of 1 - cos(e_i, e_j) over pairs i != j."""
    n = len(embeddings_ND)
    if n < 2:
        return 0.0
    unit = embeddings_ND / np.linalg.norm(embeddings_ND, axis=1, keepdims=True).clip(1e-12)
    sims = unit @ unit.T
    return float(1 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def text_metrics(texts: list[str], embeddings_ND: np.ndarray | None = None) -> dict[str, float]:
    metrics = {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
               "entropy_2": ngram_entropy(texts, 2), "self_bleu": self_bleu(texts),
               "mean_words": float(np.mean([len(_tokens(t)) for t in texts])) if texts else 0.0}
    if embeddings_ND is not None:
        metrics["embedding_cosine_distance"] = mean_pairwise_cosine_distance(embeddings_ND)
    return metrics
