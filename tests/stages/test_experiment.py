"""The whole toxicity chain (`python train.py`) on a tiny random Llama: metrics, caching, resume, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException

import evaluate
from fac_lightning.benchmarks.toxicity import load_benchmark
from fac_lightning.config import BenchmarkConfig, SourceConfig
from fac_lightning.data.conversations import DataError
from fac_lightning.finetune.classifier import HeadOnlyClassifier
from fac_lightning.stages import sae
from fac_lightning.stages.experiment import run_experiment
from tests.conftest import DATA_DIR, compose_config, kill_synthesis_after, record_units
from tests.test_evaluate import tiny_config

CHAIN = ["n_samples=4", "task.min_words=1", "task.max_words=400", "synthesis.max_new_tokens=12",
         "relevance.method=all", "finetune.epochs=2", "finetune.safe_examples=20", "benchmark.limit=40",
         "embedder=none"]


def chain_config(tiny_llama_dir, tmp_path, *overrides):
    cfg = tiny_config(tiny_llama_dir, tmp_path, *CHAIN, *overrides)
    cfg.task.seed_data[0].max_rows = 8
    cfg.task.train_positive_full[0].max_rows = 30
    cfg.task.train_negative = cfg.task.train_negative[:1]
    return cfg


@pytest.mark.parametrize("strategy", ["none", "fac"])
def test_chain_writes_metrics_and_leaderboard(tiny_llama_dir, tmp_path, strategy):
    cfg = chain_config(tiny_llama_dir, tmp_path, f"synthesis={strategy}")
    result = run_experiment(cfg)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result))
    bench = metrics["benchmark"]
    assert bench["examples"] == 40 and bench["limit"] == 40 and 0 <= bench["auprc"] <= 1
    assert metrics["train_negatives"] == 20 and 0 <= metrics["fac"]["binary"] <= 1
    assert set(metrics["timings_s"]) == {"feature_space", "training_positives", "training_set_metrics",
                                         "finetune_and_benchmark"}
    board = evaluate.write_leaderboard(tmp_path / "out", tmp_path / "board")
    assert strategy in board["markdown"] and (tmp_path / "board" / "fac_vs_auprc.png").exists()
    cfg.paths.output_dir = str(tmp_path / "rescored")
    cfg.model = str(tmp_path / "out")  # the run folder: evaluate.py finds the classifier it trained
    rescored = evaluate.benchmark_model(cfg)
    assert rescored["auprc"] == pytest.approx(bench["auprc"], abs=1e-6) and rescored["examples"] == 40


def test_killed_finetune_resumes_without_redoing_upstream_stages(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=none", "finetune.epochs=3")
    original = HeadOnlyClassifier.training_step

    def killed_in_epoch_2(self, batch, batch_idx):
        if self.current_epoch == 2:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(HeadOnlyClassifier, "training_step", killed_in_epoch_2)
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # Lightning turns Ctrl-C into exit(1)
        run_experiment(cfg)
    monkeypatch.setattr(HeadOnlyClassifier, "training_step", original)
    epochs = []
    monkeypatch.setattr(HeadOnlyClassifier, "on_train_epoch_start", lambda self: epochs.append(self.current_epoch))
    monkeypatch.setattr(sae, "load_backbone", lambda *a: pytest.fail("the SAE stage ran again"))
    result = run_experiment(cfg)
    assert epochs == [2] and 0 <= result["benchmark"]["auprc"] <= 1


def test_killed_synthesis_resumes_without_redoing_upstream_stages(tiny_llama_dir, tmp_path, monkeypatch):
    from fac_lightning.synthesis.fac import FACStrategy

    # one feature, two candidates per step: a pass keeps at most 2 of the 4 rows, so the run has a second pass
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=fac", "synthesis.feature_ratio=0.01", "synthesis.n=2",
                       "synthesis.m=2")
    kill_synthesis_after(monkeypatch, units=1)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    units = record_units(monkeypatch, FACStrategy)
    monkeypatch.setattr(sae, "load_backbone", lambda *a: pytest.fail("the SAE stage ran again"))
    result = run_experiment(cfg)
    assert units and units[0] == 1 and result["train_positives"] > 0  # unit 0 was not redone
    manifest = json.loads((Path(result["synthetic"]) / "manifest.json").read_text())
    assert manifest["tallies"]["step1_sampled"] == 2 * manifest["units"]  # the killed run's pass still counts


def test_pair_task_is_refused_by_the_classifier_chain_naming_the_key():
    with pytest.raises(ValueError, match="task.row_format='preference_pair'"):
        run_experiment(compose_config(["task=reward"]))


def test_misspelled_strategy_is_named():
    with pytest.raises(ConfigCompositionException, match="fca"):
        compose_config(["synthesis=fca"])


def test_missing_data_file_is_named(tmp_path):
    bench = BenchmarkConfig(name="b", source=SourceConfig(name="s", format="prompt", local_path="gone.jsonl"),
                            label_fields=["label"])
    with pytest.raises(FileNotFoundError, match="gone.jsonl"):
        load_benchmark(bench, tmp_path)


def test_row_without_label_is_named(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"text": "hi", "label": 0}\n{"text": "no label here"}\n')
    bench = BenchmarkConfig(name="b", source=SourceConfig(name="s", format="prompt", field="text",
                                                          local_path="rows.jsonl"), label_fields=["label"])
    with pytest.raises(DataError, match=r"rows.jsonl: row 2 has no label"):
        load_benchmark(bench, tmp_path)


def test_moderation_benchmark_loads_the_real_set():
    texts, labels = load_benchmark(compose_config().benchmark, DATA_DIR)
    assert len(texts) == len(labels) and 700 < len(texts) <= 840 and 200 < np.sum(labels) <= 261



def test_finetune_precision_is_bf16_only_on_a_bf16_gpu():
    from fac_lightning.stages.experiment import finetune_precision

    assert finetune_precision("auto", "cpu") == "32-true"
    assert finetune_precision("bf16-mixed", "cpu") == "bf16-mixed"
    expected = "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    assert finetune_precision("auto", "gpu") == expected


def test_lora_finetune_saves_a_peft_adapter_that_rescores_identically(tiny_llama_dir, tmp_path):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=none", "finetune=lora", "finetune.epochs=1",
                       "finetune.batch_size=4", "finetune.accumulate_grad_batches=2", "benchmark.limit=16")
    result = run_experiment(cfg)
    adapter = tmp_path / "artifacts" / "finetune" / result["classifier"].split("/")[-1] / "adapter"
    assert (adapter / "adapter_config.json").exists() and json.loads(
        (adapter / "adapter_config.json").read_text())["r"] == 8
    cfg.paths.output_dir, cfg.model = str(tmp_path / "rescored"), str(adapter)
    assert evaluate.benchmark_model(cfg)["auprc"] == pytest.approx(result["benchmark"]["auprc"], abs=1e-6)


def test_each_run_of_a_sweep_process_gets_its_own_wandb_run(tiny_llama_dir, tmp_path):
    runs = {}
    for seed in (0, 1):  # as a -m sweep does: several jobs, one process
        cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=none", f"seed={seed}", "logger=wandb",
                           "logger.group=sweep", "finetune.epochs=1")
        cfg.paths.output_dir = str(tmp_path / f"job{seed}")
        run_experiment(cfg)
        runs[seed] = {p.name for p in (tmp_path / f"job{seed}" / "wandb").glob("offline-run-*")}
    assert len(runs[0]) == 2  # the SAE stage's run and the experiment's
    assert len(runs[1]) == 1 and not runs[1] & runs[0]
