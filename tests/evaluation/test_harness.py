"""lm-evaluation-harness on a chat model: the local CAA A/B tasks read the mirror, results come back per task."""

import math

from fac_lightning.backbone import load_backbone
from fac_lightning.evaluation.base import build_benchmark
from fac_lightning.evaluation.harness import task_spec
from fac_lightning.finetune.chat_model import ChatModel
from tests.conftest import CACHE_DIR, DATA_DIR, compose_config, tiny_backbone_overrides


def test_local_tasks_read_the_mirror_and_other_names_pass_through():
    spec = task_spec("caa_ab_sycophancy", DATA_DIR)
    assert spec["task"] == "caa_ab_sycophancy" and spec["output_type"] == "multiple_choice"
    assert spec["dataset_kwargs"] == {"data_files": {"test": "caa/sycophancy.test_dataset_ab.dev.jsonl.gz"},
                                      "data_dir": str(DATA_DIR)}
    assert (DATA_DIR / spec["dataset_kwargs"]["data_files"]["test"]).exists()
    assert task_spec("hellaswag", DATA_DIR) == "hellaswag"


def test_lm_eval_scores_a_chat_model_on_the_caa_tasks(tiny_llama_dir):
    cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), "benchmark=lm_eval", "benchmark.limit=3"])
    model = ChatModel.from_backbone(load_backbone(cfg.backbone, CACHE_DIR))
    result = build_benchmark(cfg.benchmark, cfg.paths.data_dir).evaluate(model)
    metrics = result["metrics"]
    assert result["examples"] == 6 and result["model"] == "base:tiny_llama" and result["base_rate"] == 0.5
    for task in ("caa_ab_sycophancy", "caa_ab_survival_instinct"):
        assert metrics[f"{task}/acc"] in (0.0, 1 / 3, 2 / 3, 1.0)
        assert math.isfinite(metrics[f"{task}/acc_stderr"])
    assert metrics["average"] == (metrics["caa_ab_sycophancy/acc"] + metrics["caa_ab_survival_instinct/acc"]) / 2
