"""The whole chain for a task (``python train.py``): SAE -> anchor features -> relevance -> training positives
(synthesis, seed or full real data) -> classifier finetune -> benchmark -> one logged run.

Upstream stages are cached artifacts and are reused; the finetune is an artifact too
(``<artifacts_dir>/finetune/<hash>/``), trained with Lightning checkpoints in ``<artifact>.partial/`` so a killed
run resumes. The run's metrics go to ``<output_dir>/metrics.json`` and to the configured logger.
"""

import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, TensorDataset

from fac_lightning.artifacts import artifact_lock, atomic_dir, config_hash, write_json_atomic
from fac_lightning.backbone import load_backbone
from fac_lightning.benchmarks.toxicity import load_benchmark, toxicity_metrics
from fac_lightning.data.task_parts import TASK_PARTS, task_part
from fac_lightning.features.fac import WEIGHTINGS, fac
from fac_lightning.finetune.classifier import (
    HeadOnlyClassifier,
    LoRAClassifier,
    encode_texts,
    padded,
    pooled_states,
)
from fac_lightning.leaderboard import leaderboard, run_record
from fac_lightning.loggers import build_logger, close_logger
from fac_lightning.metrics.diversity import text_metrics
from fac_lightning.stages.feature_space import build_feature_space
from fac_lightning.stages.synthesis import run_synthesis_stage

log = logging.getLogger(__name__)
REAL_POSITIVES = {"none": "seed_data", "full_dataset": "train_positive_full"}


def texts_of(cfg: DictConfig, part: str) -> list[str]:
    return [c[0]["content"] for c in task_part(cfg.task, part, cfg.paths.data_dir)]


def training_positives(cfg: DictConfig, backbone) -> tuple[list[str], str | None]:
    """Label-1 training texts for this run and, for synthetic ones, the synthetic artifact they came from."""
    strategy = cfg.synthesis.strategy
    if strategy in REAL_POSITIVES:
        return texts_of(cfg, REAL_POSITIVES[strategy]), None
    folder = run_synthesis_stage(cfg, backbone)
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    return [r["text"] for r in rows], str(folder)


def finetune_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    on_bf16_gpu = accelerator == "gpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16-mixed" if on_bf16_gpu else "32-true"


def fit(module: pl.LightningModule, loader: DataLoader, cfg: DictConfig, work: Path) -> None:
    trainer = pl.Trainer(accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, logger=False,
                         precision=finetune_precision(cfg.finetune.precision, cfg.trainer.accelerator),
                         max_epochs=cfg.finetune.epochs, accumulate_grad_batches=cfg.finetune.accumulate_grad_batches,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         callbacks=[pl.callbacks.ModelCheckpoint(dirpath=work, save_last=True,
                                                                 save_on_train_epoch_end=True, every_n_epochs=1)])
    last = work / "last.ckpt"
    trainer.fit(module, loader, ckpt_path=str(last) if last.exists() else None)
    if trainer.current_epoch < cfg.finetune.epochs:
        raise RuntimeError(f"finetune stopped at epoch {trainer.current_epoch}; rerun to resume from {last}")


def train_classifier(cfg: DictConfig, backbone, texts: list[str], labels: list[int], key: str) -> Path:
    """Train (or reuse) the classifier for this training set; return its artifact folder."""
    final = Path(cfg.paths.artifacts_dir) / "finetune" / f"{cfg.task.name}-{cfg.finetune.method}-{key}"
    if not (final / "classifier.json").exists():
        with artifact_lock(final):
            if not (final / "classifier.json").exists():  # another process may have built it while we waited
                finetune(cfg, backbone, texts, labels, final)
    return final


def finetune(cfg: DictConfig, backbone, texts: list[str], labels: list[int], final: Path) -> None:
    work = final.with_name(final.name + ".partial")
    tok, ft = backbone.tokenizer, cfg.finetune
    sequences = encode_texts(tok, texts, ft.max_length)
    pl.seed_everything(cfg.seed, workers=True)
    y = torch.tensor(labels)
    if ft.method == "head_only":
        module = HeadOnlyClassifier(backbone.d_model, OmegaConf.to_object(ft))
        states = pooled_states(backbone, sequences, ft.inference_batch_size)
        fit(module, DataLoader(TensorDataset(states, y), batch_size=ft.batch_size, shuffle=True), cfg, work)
    elif ft.method == "lora":
        module = LoRAClassifier(backbone.path, tok.pad_token_id, OmegaConf.to_object(ft))
        ids, mask = padded(tok, sequences)
        fit(module, DataLoader(TensorDataset(ids, mask, y), batch_size=ft.batch_size, shuffle=True), cfg, work)
    else:
        raise ValueError(f"finetune.method={ft.method!r}: choose from head_only, lora")
    with atomic_dir(final) as tmp:
        if ft.method == "head_only":
            save_file(module.score.state_dict(), tmp / "head.safetensors")
        else:
            module.model.save_pretrained(tmp / "adapter")
        write_json_atomic(tmp / "classifier.json", {
            "method": ft.method, "backbone": cfg.backbone.name, "finetune": OmegaConf.to_container(ft),
            "examples": len(texts), "positives": sum(labels), "synthesis": cfg.synthesis.strategy,
            "data_split": {part: OmegaConf.to_container(cfg.task[part]) for part in TASK_PARTS}})
    shutil.rmtree(work, ignore_errors=True)


def classifier_folder(model: str | Path) -> Path:
    """The finetune artifact behind ``model=``: the artifact itself, its peft ``adapter/`` folder, or a ``train.py``
    run folder (whose metrics.json names the classifier it trained)."""
    folder = Path(model)
    if (folder / "metrics.json").exists():
        folder = Path(json.loads((folder / "metrics.json").read_text())["classifier"])
    elif (folder / "adapter_config.json").exists():
        folder = folder.parent
    if not (folder / "classifier.json").exists():
        raise FileNotFoundError(f"model={model}: not a finetune artifact, its adapter folder or a train.py run folder "
                                f"(no classifier.json in {folder})")
    return folder


def score_classifier(cfg: DictConfig, backbone, folder: str | Path, texts: list[str]) -> np.ndarray:
    """P(toxic) of each text under the classifier in ``folder`` (see ``classifier_folder``)."""
    folder = classifier_folder(folder)
    meta = json.loads((folder / "classifier.json").read_text())
    ft = OmegaConf.to_object(cfg.finetune)
    sequences = encode_texts(backbone.tokenizer, texts, ft.max_length)
    if meta["method"] == "head_only":
        module = HeadOnlyClassifier(backbone.d_model, ft)
        module.score.load_state_dict(load_file(folder / "head.safetensors"))
        return module.prob_toxic(pooled_states(backbone, sequences, ft.inference_batch_size)).numpy()
    module = LoRAClassifier(backbone.path, backbone.tokenizer.pad_token_id, ft, str(folder / "adapter"))
    return module.prob_toxic(backbone.tokenizer, sequences, ft.inference_batch_size).numpy()


def run_experiment(cfg: DictConfig) -> dict:
    if cfg.task.row_format != "query":
        raise ValueError(f"train.py stage=experiment trains a text classifier on query rows; task={cfg.task.name} has "
                         f"task.row_format={cfg.task.row_format!r} (its model finetune is not built yet: use "
                         f"synthesize.py / evaluate.py for this task)")
    timings, started = {}, time.time()

    def lap(name: str) -> None:
        timings[name] = round(time.time() - started - sum(timings.values()), 1)

    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    space = build_feature_space(cfg, backbone)
    lap("feature_space")
    positives, synthetic_dir = training_positives(cfg, backbone)
    lap("training_positives")
    negatives = texts_of(cfg, "train_negative")
    negatives = random.Random(cfg.seed).sample(negatives, min(cfg.finetune.safe_examples, len(negatives)))
    table = space.table(f"{cfg.task.name}-train-{cfg.synthesis.strategy}", [[{"role": "user", "content": t}]
                                                                           for t in positives], cfg)
    coverage = {w: fac(table, space.anchor, space.delta, space.relevant, w) for w in WEIGHTINGS}
    diversity = text_metrics(positives)
    lap("training_set_metrics")
    test_texts, test_labels = load_benchmark(OmegaConf.to_object(cfg.benchmark), cfg.paths.data_dir)
    key = config_hash(cfg.backbone.name, cfg.finetune, cfg.seed, positives, negatives)
    classifier = train_classifier(cfg, backbone, positives + negatives,
                                  [1] * len(positives) + [0] * len(negatives), key)
    p_toxic = score_classifier(cfg, backbone, classifier, test_texts)
    lap("finetune_and_benchmark")
    result = {
        "task": cfg.task.name, "strategy": cfg.synthesis.strategy, "seed": cfg.seed, "backbone": cfg.backbone.name,
        "finetune": cfg.finetune.method, "n_samples": cfg.n_samples, "delta": space.delta,
        "relevance": cfg.relevance.method, "train_positives": len(positives), "train_negatives": len(negatives),
        "synthetic": synthetic_dir, "classifier": str(classifier), "fac": coverage, "text": diversity,
        "benchmark": toxicity_metrics(test_labels, p_toxic, OmegaConf.to_object(cfg.benchmark)),
        "timings_s": timings,
    }
    write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", result)
    logger = build_logger(cfg)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics({"train_positives": len(positives), "train_negatives": len(negatives),
                            **{f"{group}/{k}": v for group in ("fac", "text", "benchmark", "timings_s")
                               for k, v in result[group].items() if isinstance(v, int | float)}})
        close_logger(logger)
    row = leaderboard(pd.DataFrame([run_record(result, cfg.paths.output_dir)]))
    log.info("this run's leaderboard row (benchmark=%s, %d examples; a sweep's table: evaluate.py mode=leaderboard)"
             ":\n%s", cfg.benchmark.name, result["benchmark"]["examples"], row.to_markdown(index=False))
    return result
