"""The ``sae`` stage: train a TopK SAE on the backbone's streamed activations and save it as an artifact.

Artifact: ``<artifacts_dir>/sae/<backbone>-L<layer>-<hash>/`` with ``cfg.json``, ``sae.safetensors`` and
``manifest.json``; the hash covers exactly the backbone as it runs (its dtype resolved), the layer, the SAE recipe
(with its own seed), the activation settings, the data and the fit's precision (``plan.RunPlan.sae``).
Checkpoints live in ``<artifact>.partial/`` until the run completes; rerunning a killed run resumes from them
(``artifacts.ensure_artifact``, ``trainer.fit``).
"""

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from fac_lightning.activations import TokenizedCorpus, split_heldout
from fac_lightning.artifacts import REFUSE, ensure_artifact, write_json_atomic
from fac_lightning.backbone import Backbone, load_backbone
from fac_lightning.data.conversations import load_conversations
from fac_lightning.loggers import run_logger
from fac_lightning.plan import RunPlan
from fac_lightning.sae.module import ActivationDataModule, SAEModule
from fac_lightning.trainer import fit, remove_checkpoints

log = logging.getLogger(__name__)

SAE_REBUILD = ("Training an SAE takes minutes on the demo and hours at the paper's scale, and every feature table "
               "and row set built on it is keyed by it, so it is not retrained behind your back: delete the folder "
               "to train it again")
"""A corrupted SAE is refused, not rebuilt (``artifacts.ensure_artifact``)."""

VERSION = 1
"""The SAE stage's version (``plan.RunPlan.sae``): bump it when a change of the training code changes the SAE."""


def corpus_conversations(run: RunPlan) -> list:
    return [c for source in run.data.sources for c in load_conversations(source, run.data_dir)]


def build_corpora(run: RunPlan, backbone: Backbone, conversations: list) -> tuple[TokenizedCorpus, TokenizedCorpus]:
    train, heldout = split_heldout(conversations, run.activations.heldout_sequences)
    return TokenizedCorpus(backbone, train, run.activations), TokenizedCorpus(backbone, heldout, run.activations)


def run_sae_stage(run: RunPlan, backbone: Backbone | None = None) -> Path:
    """Ensure the run's SAE artifact exists (train it, resuming if a partial run is found); return its folder."""
    return ensure_artifact(run.sae.path, lambda work: train_sae(run, backbone, work), "SAE artifact",
                           on_corrupt=REFUSE, hint=SAE_REBUILD)


def train_sae(run: RunPlan, backbone: Backbone | None, work: Path) -> None:
    started = time.time()
    recipe, activations = run.sae_config, run.activations
    pl.seed_everything(recipe.seed, workers=True)
    conversations = corpus_conversations(run)  # a missing or bad data file fails before the backbone loads
    backbone = backbone or load_backbone(run.backbone, run.paths.cache_dir)
    train, heldout = build_corpora(run, backbone, conversations)
    log.info("SAE corpus: %d train / %d held-out sequences, %d train tokens",
             len(train), len(heldout), sum(len(s) for s in train.sequences))
    module = SAEModule(recipe, backbone.d_model, backbone)
    datamodule = ActivationDataModule(backbone, train, heldout, recipe.batch_tokens, activations.buffer_tokens,
                                      recipe.seed)
    max_steps = max(recipe.train_tokens // recipe.batch_tokens, 1)
    checkpoint = ModelCheckpoint(dirpath=work, save_last=True, save_top_k=0,
                                 every_n_train_steps=recipe.checkpoint_every_steps)
    with run_logger(run.logger) as logger:
        trainer = fit(run.fit_context(logger), module, datamodule, work, [checkpoint], max_steps=max_steps,
                      val_check_interval=recipe.val_every_steps, check_val_every_n_epoch=None, num_sanity_val_steps=0)
        if trainer.global_step < max_steps:  # interrupted (Ctrl-C): keep the checkpoints, write no artifact
            raise RuntimeError(f"SAE training stopped at step {trainer.global_step}/{max_steps}; rerun to resume "
                               f"from {work / 'last.ckpt'}")
        metrics = {k: float(v) for k, v in trainer.validate(module, datamodule, verbose=False)[0].items()}
        if not trainer.is_global_zero:  # a DDP rank > 0: rank 0 writes the artifact
            return
        remove_checkpoints(work)
        module.sae.save(work, extra={
            "backbone": run.backbone.name, "model": run.backbone.model, "layer": run.backbone.layer,
            "layer_meaning": "residual stream after decoder block `layer` (1-based) = HF hidden_states[layer]",
            "prefix_len": backbone.prefix_len, "skip_template_prefix": activations.skip_template_prefix,
            "exclude_special_tokens": activations.exclude_special_tokens,
        })
        write_json_atomic(work / "manifest.json", {
            "stage": "sae", "config": run.config, "metrics": metrics,
            "steps": trainer.global_step, "tokens": trainer.global_step * recipe.batch_tokens,
            "seconds": time.time() - started,
        })
        if logger:
            logger.log_metrics({f"final/{k}": v for k, v in metrics.items()})
    log.info("SAE trained: %s", metrics)
