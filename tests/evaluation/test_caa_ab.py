"""CAA's A/B steering benchmark: the one-pass letter probabilities, robust accuracy, SCR and their standard errors,
and the items' checks."""

import json
import math

import numpy as np
import pytest
import torch

from fac_lightning.checks import ConfigError
from fac_lightning.data.ab_items import swapped
from fac_lightning.evaluation import caa_ab
from fac_lightning.evaluation.base import build_benchmark
from fac_lightning.files import DataError
from fac_lightning.finetune.steering import answer_prefix
from tests.conftest import DATA_DIR, compose_config
from tests.finetune.test_steering import ROWS, steering_setup


def continuation_logprob(backbone, question: str, answer: str, model, multiplier: float) -> float:
    """log P("(X" | question, assistant turn opened), scoring the whole continuation in its own forward pass."""
    tokenizer = backbone.tokenizer
    prefix = tokenizer(answer_prefix(tokenizer, question), add_special_tokens=False)["input_ids"]
    ids = tokenizer(answer_prefix(tokenizer, question, answer), add_special_tokens=False)["input_ids"]
    with model.steer(multiplier):
        logprobs_TV = torch.log_softmax(backbone.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(float(logprobs_TV[t - 1, ids[t]]) for t in range(len(prefix), len(ids)))


@pytest.mark.parametrize("multiplier", [0.0, 2.0])
def test_one_pass_reads_what_scoring_each_answer_on_its_own_gives(tiny_llama_dir, tmp_path, multiplier):
    backbone, model = steering_setup(tiny_llama_dir, tmp_path)
    items = [(r["question"], r["answer_matching_behavior"], r["answer_not_matching_behavior"]) for r in ROWS]
    items += [swapped(*item) for item in items]
    items.append((ROWS[0]["question"], "(Yes)", "(No, never)"))  # continuations of several tokens: a pass each
    p_N = caa_ab.p_matching(model, items, multiplier)
    expected = [1 / (1 + math.exp(continuation_logprob(backbone, q, n, model, multiplier)
                                  - continuation_logprob(backbone, q, m, model, multiplier))) for q, m, n in items]
    np.testing.assert_allclose(p_N, expected, rtol=1e-4)


class PlantedVector:
    """A stand-in steering vector: its task and config are all the benchmark reads besides ``p_matching``."""

    layer, task = 3, "sycophancy"

    class cfg:
        class positions:
            value = "all"


def test_robust_accuracy_scr_and_standard_errors_from_planted_probabilities(monkeypatch):
    # 4 items; per multiplier: P(matching) as written (first 4) and swapped (last 4)
    planted = {-1.0: [0.9, 0.4, 0.3, 0.2, 0.4, 0.6, 0.3, 0.1], 0.0: [0.9, 0.6, 0.3, 0.2, 0.7, 0.6, 0.3, 0.1],
               1.0: [0.9, 0.6, 0.8, 0.7, 0.7, 0.6, 0.9, 0.1]}
    monkeypatch.setattr(caa_ab, "p_matching", lambda model, items, m: np.array(planted[m]))
    bench = build_benchmark(compose_config(["benchmark=caa_ab", "benchmark.multipliers=[-1,0,1]",
                                            "benchmark.limit=4"]).benchmark, DATA_DIR)
    result = bench.evaluate(PlantedVector())
    metrics, plus = result["metrics"], result["per_multiplier"]["+1"]
    assert result["behaviour"] == "sycophancy" and result["examples"] == 4 and result["base_rate"] == 0.0
    assert plus["accuracy"] == 1.0 and plus["robust_accuracy"] == 0.75  # item 4 is right only as written
    assert metrics["robust_accuracy@-1"] == 0.0 and metrics["robust_accuracy@0"] == 0.5
    assert metrics["scr"] == 0.75 and metrics["scr_se"] == pytest.approx(np.std([1, 1, 1, 0], ddof=1) / 2)
    assert plus["robust_accuracy_se"] == pytest.approx(math.sqrt(0.75 * 0.25 / 3))
    assert plus["p_matching"] == pytest.approx(np.mean([0.8, 0.6, 0.85, 0.4]))


def test_multipliers_without_both_signs_are_refused_where_the_config_is_built():
    with pytest.raises(ConfigError, match="benchmark.multipliers=\\[0.0, 1.0\\]: must hold -1 and 1"):
        build_benchmark(compose_config(["benchmark=caa_ab", "benchmark.multipliers=[0,1]"]).benchmark, DATA_DIR)


def test_a_malformed_test_item_is_named(tmp_path):
    good = {"question": "Off?\n (A) Yes\n (B) No", "answer_matching_behavior": "(A)",
            "answer_not_matching_behavior": "(B)"}
    (tmp_path / "items.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good | {"question": "Off?"}) + "\n")
    bench = build_benchmark(compose_config(["benchmark=caa_ab", f"benchmark.path={tmp_path}/items.jsonl"]).benchmark,
                            DATA_DIR)
    with pytest.raises(DataError, match="items.jsonl: row 2 is not an A/B item \\(missing_choice\\)"):
        bench.evaluate(PlantedVector())
