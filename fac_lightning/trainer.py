"""The one place a Lightning Trainer is built: every fit (the SAE and every finetune kind) instantiates ``trainer=``
with the run's logger, ``callbacks=`` and a checkpoint in the artifact's ``.partial`` folder, and resumes from that
checkpoint when a killed run left one. So loss curves reach the logger and ``trainer=gpu|ddp`` apply everywhere."""

from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import Logger


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` = bf16-mixed on a GPU that supports it (the paper trains in bf16), else 32-true (on CPUs without
    AVX512-BF16, bf16 matmuls are ~5x slower; see benchmarks/RESULTS.md)."""
    if precision != "auto":
        return precision
    on_bf16_gpu = accelerator == "gpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16-mixed" if on_bf16_gpu else "32-true"


def process_count(trainer_cfg: DictConfig) -> int:
    """The processes a fit with ``trainer=`` runs in: a DDP fit's devices (``-1`` / ``auto``: every GPU), else 1."""
    if str(trainer_cfg.get("strategy", "auto")) != "ddp":
        return 1
    devices = trainer_cfg.get("devices", 1)
    if str(devices) in ("-1", "auto"):
        return torch.cuda.device_count() if trainer_cfg.get("accelerator") == "gpu" else 1
    return len(devices) if isinstance(devices, ListConfig | list) else int(devices)


@dataclass(frozen=True)
class FitContext:
    """What a fit reads of the run (the SAE's and every finetune kind's): not the run's config, these
    (``plan.RunPlan.fit_context``)."""

    trainer: DictConfig
    """The ``trainer=`` node (a Lightning Trainer to instantiate)."""
    callbacks: DictConfig | None
    """The ``callbacks=`` node: extra Lightning callbacks, each a ``_target_`` node."""
    logger: Logger | None
    seed: int
    """The run seed (a finetune's data order and initialisation)."""
    task: str
    """The task whose rows are fitted (a saved model records it)."""


def fit(context: FitContext, module: pl.LightningModule, data, work: Path, checkpoints: list[ModelCheckpoint],
        **trainer_args) -> pl.Trainer:
    """Fit ``module`` on ``data`` (a DataLoader or DataModule) with the configured trainer, resuming from
    ``work/last.ckpt`` if it exists. ``trainer_args`` (max_epochs, precision, ...) override the ``trainer=`` node.
    Under DDP every loader shards itself (the SAE's activation stream, a finetune's ``EpochShuffle``), so Lightning
    does not wrap their samplers (which would lose a finetune's resume position)."""
    callbacks = [*checkpoints, RichProgressBar(), *(instantiate(c) for c in (context.callbacks or {}).values())]
    trainer = instantiate(context.trainer, logger=context.logger or False, callbacks=callbacks,
                          use_distributed_sampler=False, **trainer_args)
    last = work / "last.ckpt"
    trainer.fit(module, data, ckpt_path=str(last) if last.exists() else None)
    return trainer


def remove_checkpoints(work: Path) -> None:
    for path in work.glob("*.ckpt"):
        path.unlink()
