"""The Finetune contract and the finetune artifact.

A finetune kind declares the row formats it ``consumes`` and the model kind it ``produces`` (what a benchmark
``needs``), trains through the one Trainer builder (``fac_lightning.trainer.fit``) and saves a self-describing
model folder: ``model.json`` (kind, backbone config, finetune config, training rows) beside its weights, so
``load_model(folder, cache_dir)`` needs nothing else (after sparsify's ``save_to_disk`` / ``load_from_disk``).
"""

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from torchdata.stateful_dataloader import StatefulDataLoader

from fac_lightning.artifacts import (
    NOT_IN_KEY,
    REFUSE,
    ensure_artifact,
    process_rank,
    verify_artifact,
    write_json_atomic,
)
from fac_lightning.backbone import Backbone, BackboneShape, load_backbone
from fac_lightning.checks import above, at_least, one_of, require, within
from fac_lightning.config import BackboneConfig, component_config
from fac_lightning.files import read_json
from fac_lightning.finetune import FINETUNES
from fac_lightning.finetune.resume import StepCheckpoint
from fac_lightning.plan import RunPlan
from fac_lightning.trainer import FitContext, fit, remove_checkpoints, resolve_precision

log = logging.getLogger(__name__)


PRECISIONS = ("auto", "32-true", "32", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
"""Lightning's precision names (``auto`` resolved by ``trainer.resolve_precision``)."""


@dataclass
class FinetuneConfig:
    kind: str = MISSING
    """Registered finetune kind (``fac_lightning.finetune``)."""
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 1
    accumulate_grad_batches: int = 1
    weight_decay: float = 0.0
    max_length: int = 512
    """Longest tokenized training / scoring sequence."""
    inference_batch_size: int = field(default=16, metadata=NOT_IN_KEY)
    precision: str = "auto"
    """Lightning precision; ``auto`` = bf16-mixed on a GPU that supports it, else 32-true (``trainer.py``)."""
    checkpoint_every_n_steps: int = field(default=10, metadata=NOT_IN_KEY)
    """Also checkpoint every this many optimizer steps (0 = at epoch ends only), so a fit killed inside a long
    epoch (the one-epoch LoRA reward model: ~30 s per step on a 2-core CPU) resumes at the batch it reached."""

    def __post_init__(self):
        at_least(self, 1, "epochs", "batch_size", "accumulate_grad_batches", "max_length", "inference_batch_size")
        at_least(self, 0, "checkpoint_every_n_steps")
        above(self, 0, "lr")
        at_least(self, 0, "weight_decay")
        one_of(self, "precision", PRECISIONS)


@dataclass
class LoraFields:
    """The LoRA settings of a ``*_lora`` kind (peft ``LoraConfig``)."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Every attention and MLP projection (the paper's setting)."""

    def check_lora(self) -> None:
        at_least(self, 1, "lora_r")
        above(self, 0, "lora_alpha")
        within(self, "lora_dropout", 0, 1, high_open=True)
        require(len(self.lora_target_modules) > 0, "lora_target_modules", list(self.lora_target_modules),
                "must name at least one module")


def lora_sequence_model(model_path: str, pad_token_id: int, num_labels: int, cfg: LoraFields,
                        adapter_dir: str | None = None):
    """The backbone as ``AutoModelForSequenceClassification(num_labels)`` (fp32) with peft LoRA adapters and a
    trainable head: new ones from ``cfg``, or trained ones loaded from ``adapter_dir`` (peft's format)."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=num_labels, dtype=torch.float32)
    model.config.pad_token_id = pad_token_id
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, adapter_dir)
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules))
    model = get_peft_model(model, lora)
    model.train()  # from_pretrained returns eval mode, and Lightning keeps it: LoRA dropout would be off
    return model


class AdapterCheckpoints(pl.LightningModule):
    """A LoRA module whose checkpoints hold only its trainable weights (adapters and head): a checkpoint of the
    whole model is ~4 bytes per parameter (540 MB for SmolLM2-135M), the adapters a few MB. Loading is not strict,
    since the frozen weights come from the model itself."""

    strict_loading = False

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}


class Finetune:
    name = ""
    consumes: tuple[str, ...] = ()
    """Row formats it trains on."""
    produces = ""
    """Model kind of what it saves (a benchmark's ``needs``)."""
    distributed = False
    """It runs under ``trainer=ddp`` (the LoRA kinds: a fit of the backbone on every GPU); the others refuse it."""
    version = 1
    """Part of its models' keys: bump it when a change of the kind's code changes the model trained on the same rows."""

    def __init__(self, cfg: FinetuneConfig):
        self.cfg = cfg

    def preflight(self, backbone: BackboneConfig, shape: BackboneShape, cache_dir: str | Path) -> None:
        """Fail now, naming the key, on a setting that only the backbone's shape (read without loading weights) can
        check; the run's ``preflight`` calls it before any model loads."""

    imports: tuple[str, ...] = ()
    """Packages its fit imports besides torch and transformers (peft for LoRA, trl's collators)."""

    def requirements(self, data_dir) -> list:
        """What it reads and imports besides the backbone (``fac_lightning.requirements``)."""
        from fac_lightning.requirements import Package

        return [Package("finetune", self.name, module, f"pip install {module}") for module in self.imports]

    def train(self, rows: list[dict], backbone: Backbone, work: Path, context: FitContext) -> None:
        """Fit on ``rows`` (checkpoints in ``work``, resumed if present) and save the weights into ``work``."""
        raise NotImplementedError

    def load(self, folder: Path, backbone: Backbone):
        """The trained model saved in ``folder``."""
        raise NotImplementedError


def scheduled_adamw(module: pl.LightningModule, cfg: FinetuneConfig, schedule: str, warmup_ratio: float = 0.0) -> dict:
    """``configure_optimizers`` of the scheduled kinds: AdamW over the trainable parameters and transformers'
    ``get_scheduler(schedule)`` (linear, cosine, ...) with ``warmup_ratio`` of the steps warming up, stepped per
    optimizer step, over the fit's optimizer steps as Lightning counts them: ``module.batches_per_epoch`` (set by
    ``fit_finetune``) shared among the processes, a partial accumulation at an epoch's end stepping too. Not
    Lightning's ``estimated_stepping_batches``: reading it sets the data up before a resumed fit restores its
    position in the epoch, which is then lost (Lightning issue #20550)."""
    from transformers import get_scheduler

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = math.ceil(module.batches_per_epoch / module.trainer.world_size)
    steps = math.ceil(batches / cfg.accumulate_grad_batches) * cfg.epochs
    schedule = get_scheduler(schedule, optimizer, num_warmup_steps=int(warmup_ratio * steps), num_training_steps=steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def fit_finetune(cfg: FinetuneConfig, module: pl.LightningModule, data: StatefulDataLoader, work: Path,
                 context: FitContext, **trainer_args) -> bool:
    """Fit ``data`` (``resume.shuffled_batches``) through the one Trainer builder for ``cfg.epochs``, writing
    ``work/last.ckpt`` at every epoch end and every ``cfg.checkpoint_every_n_steps`` optimizer steps (a killed fit
    resumes from the latest); ``trainer_args`` are a kind's own Trainer settings (gradient clipping). Returns whether
    this process saves the weights: under DDP only rank 0 does."""
    # Two callbacks, since one cannot save both per epoch and per step; both write last.ckpt (no last-v1.ckpt)
    checkpoints = [ModelCheckpoint(dirpath=work, save_last=True, save_on_train_epoch_end=True, every_n_epochs=1,
                                   enable_version_counter=False)]
    if cfg.checkpoint_every_n_steps:
        checkpoints.append(StepCheckpoint(work, cfg.checkpoint_every_n_steps))
    module.batches_per_epoch = len(data)
    trainer = fit(context, module, data, work, checkpoints, max_epochs=cfg.epochs,
                  accumulate_grad_batches=cfg.accumulate_grad_batches,
                  precision=resolve_precision(cfg.precision, context.trainer.accelerator),
                  num_sanity_val_steps=0, limit_val_batches=0, **trainer_args)
    if trainer.current_epoch < cfg.epochs:
        raise RuntimeError(f"finetune stopped at epoch {trainer.current_epoch}; rerun to resume from "
                           f"{work / 'last.ckpt'}")
    return trainer.is_global_zero


def build_finetune(cfg: DictConfig | dict) -> Finetune:
    node = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    return FINETUNES.get(node.kind).cls(component_config(node, FINETUNES))


VERSION = 1
"""Version of what every finetune kind's artifact means (``plan.RunPlan.model``); each kind has its own ``version``."""


def train_model(run: RunPlan, rows: list[dict], backbone: Backbone, logger, provenance: dict | None = None) -> Path:
    """The run's finetune artifact for these rows (trained now, resuming a killed fit, or reused); ``provenance``
    (where the rows came from) is recorded in its model.json."""
    finetune = run.finetune

    def build(work: Path) -> None:
        pl.seed_everything(run.seed, workers=True)
        finetune.train(rows, backbone, work, run.fit_context(logger))
        if process_rank() > 0:  # a DDP rank > 0 joined the fit; rank 0 writes the artifact
            return
        remove_checkpoints(work)
        write_json_atomic(work / "model.json", {
            "kind": finetune.name, "produces": finetune.produces, "backbone": asdict(backbone.cfg),
            "finetune": asdict(finetune.cfg), "seed": run.seed, "rows": len(rows), "task": run.task.name,
            "row_format": run.task.row_format, "provenance": provenance or {}})

    return ensure_artifact(run.model(rows).path, build, "finetuned model", on_corrupt=REFUSE, hint=MODEL_REBUILD)


MODEL_REBUILD = ("A finetune takes seconds for a head and hours for LoRA on a large backbone, so it is not retrained "
                 "behind your back; delete the folder to train it again (the same rows and seed give the same model)")


def model_folder(model: str | Path) -> Path:
    """The saved model behind ``model=``: the folder itself, its peft ``adapter/`` folder, or a ``train.py`` run
    folder (whose metrics.json names the model it trained)."""
    folder = Path(model)
    if (folder / "metrics.json").exists():
        folder = Path(read_json(folder / "metrics.json")["model"])
    elif (folder / "adapter_config.json").exists():
        folder = folder.parent
    if not (folder / "model.json").exists():
        raise FileNotFoundError(f"model={model}: not a saved model, its adapter folder or a train.py run folder "
                                f"(no model.json in {folder})")
    return folder


def load_model(model: str | Path, cache_dir: str | Path, backbone: Backbone | None = None):
    """Load a saved model with one call; its backbone is loaded from ``model.json`` unless given."""
    folder = verify_artifact(model_folder(model), "finetuned model", MODEL_REBUILD)
    meta = read_json(folder / "model.json")
    finetune = build_finetune(meta["finetune"])
    backbone = backbone or load_backbone(OmegaConf.to_object(OmegaConf.merge(
        OmegaConf.structured(BackboneConfig), meta["backbone"])), cache_dir)
    return finetune.load(folder, backbone)
