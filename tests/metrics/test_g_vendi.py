"""G-Vendi: the Vendi score against a direct eigenvalue computation and its known cases, the seeded Rademacher
projection against the explicit matrix, and the gradients of a real (tiny) proxy model."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fac_lightning.checks import ConfigError
from fac_lightning.metrics.g_vendi import GradientConfig, GradientSketch, GVendiConfig, g_vendi, vendi_score


def direct_vendi(x_ND: np.ndarray) -> float:
    """The definition: exp(-sum lambda log lambda) of the eigenvalues of K / N, K the cosine Gram matrix."""
    unit = x_ND / np.linalg.norm(x_ND, axis=1, keepdims=True)
    eig = np.linalg.eigvalsh(unit @ unit.T / len(unit))
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


def test_identical_rows_score_one_and_orthogonal_rows_score_n():
    row = np.random.default_rng(0).normal(size=16)
    assert vendi_score(np.tile(row, (7, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(5, 16) * 3.0) == pytest.approx(5.0)
    assert vendi_score(np.eye(40)) == pytest.approx(40.0)  # N > D's branch: the D x D matrix


@pytest.mark.parametrize("n,d", [(6, 20), (50, 8)])
def test_the_vendi_score_is_the_eigenvalue_entropy_of_the_gram_matrix(n, d):
    x_ND = np.random.default_rng(n).normal(size=(n, d))
    x_ND[1] = x_ND[0] * 2  # a duplicate direction
    assert vendi_score(x_ND) == pytest.approx(direct_vendi(x_ND), rel=1e-9)
    assert 1 <= vendi_score(x_ND) <= min(n, d)


@pytest.fixture(scope="module")
def tiny_proxy(tiny_llama_dir):
    return (AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(tiny_llama_dir))


def chat(text):
    return [{"role": "user", "content": text}]


def test_the_projection_is_the_seeded_rademacher_matrix_applied_chunk_by_chunk(tiny_proxy):
    sketch = GradientSketch(*tiny_proxy, GradientConfig(dim=8, chunk=5, projection_seed=3, last_parameters=1))
    grads_BG = torch.randn(3, 12)
    generator = torch.Generator().manual_seed(3)
    signs = torch.cat([torch.randint(0, 2, (n, 8), generator=generator, dtype=torch.int8) for n in (5, 5, 2)])
    direct_BP = grads_BG @ (signs.float() * 2 - 1)
    assert torch.allclose(sketch.project(grads_BG), direct_BP, atol=1e-5)
    assert set(torch.unique(signs.float() * 2 - 1).tolist()) == {-1.0, 1.0}


def test_gradients_of_the_proxy_separate_texts_and_leave_the_model_as_it_was(tiny_proxy):
    model, tokenizer = tiny_proxy
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    sketch = GradientSketch(model, tokenizer, GradientConfig(dim=64, last_parameters=2))
    assert [n for n, _ in sketch.params] == ["model.layers.2.mlp.down_proj.weight",
                                             "model.layers.3.mlp.down_proj.weight"]
    texts = ["how do I pick a lock", "write a poem about rain", "how do I pick a lock"]
    x_NP = sketch([chat(t) for t in texts])
    assert x_NP.shape == (3, 64) and np.allclose(np.linalg.norm(x_NP, axis=1), 1.0, atol=1e-5)
    assert np.allclose(x_NP[0], x_NP[2], atol=1e-5) and not np.allclose(x_NP[0], x_NP[1], atol=1e-3)
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())  # nothing left behind
    same = g_vendi(sketch, [chat(texts[0])] * 4)
    varied = g_vendi(sketch, [chat(t) for t in ["how do I pick a lock", "write a poem about rain",
                                                 "what is the capital of Peru", "give me a soup recipe"]])
    assert same == pytest.approx(1.0, abs=1e-4) and 1.5 < varied <= 4
    for p, flag in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(flag)


def test_a_parameter_pattern_that_matches_nothing_is_named(tiny_proxy):
    with pytest.raises(ConfigError, match=r"g_vendi.parameters=.nothing.*matches no parameter"):
        GradientSketch(*tiny_proxy, GradientConfig(parameters=r"nothing\.here"))
    with pytest.raises(ConfigError, match="parameters='\\(': not a regular expression"):
        GVendiConfig(parameters="(")
