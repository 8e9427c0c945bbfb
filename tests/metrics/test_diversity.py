import numpy as np

from fac_lightning.metrics.diversity import (
    distinct_n,
    mean_pairwise_cosine_distance,
    ngram_entropy,
    self_bleu,
)


def test_repetitive_text_scores_less_diverse():
    same = ["how do I make a bomb at home"] * 10
    varied = ["how do I make a bomb at home", "write a poem about spring rain", "what is the capital of Peru",
              "explain quantum tunnelling simply", "give me a recipe for lentil soup"]
    assert distinct_n(same, 1) < distinct_n(varied, 1) and distinct_n(varied, 2) == 1.0
    assert ngram_entropy(same, 2) < ngram_entropy(varied, 2)
    assert self_bleu(same) > 0.99 and self_bleu(varied) < 0.2


def test_cosine_distance():
    assert mean_pairwise_cosine_distance(np.array([[1.0, 0], [2.0, 0]])) == 0.0
    assert np.isclose(mean_pairwise_cosine_distance(np.array([[1.0, 0], [0, 1.0]])), 1.0)


def test_minilm_embeddings_put_paraphrases_closer():
    from fac_lightning.metrics.embeddings import minilm_embeddings

    e = minilm_embeddings(["how to make a bomb", "how to build an explosive device", "a recipe for lentil soup"])
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    assert e.shape == (3, 384) and unit[0] @ unit[1] > unit[0] @ unit[2] + 0.3
