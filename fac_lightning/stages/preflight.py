"""The checks every entry point runs before any model loads: each config field's range and choices
(``config.validate_config``), the backbone's layer and the SAE's width against the backbone's shape (read from its
config, not its weights), the finetune's own checks against that shape (``Finetune.preflight``: a steering layer, the
other backbone a fine-tune trains), and that the SAE corpus can be read when the SAE still has to be trained."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fac_lightning.backbone import backbone_shape, check_layer
from fac_lightning.checks import ConfigError, require
from fac_lightning.config import validate_config
from fac_lightning.data.conversations import check_source
from fac_lightning.plan import plan


def check_sae_width(sae: DictConfig, d_model: int) -> None:
    latents = sae.num_latents or sae.expansion_factor * d_model
    how = "sae.num_latents" if sae.num_latents else f"sae.expansion_factor={sae.expansion_factor} x d_model {d_model}"
    require(sae.k <= latents, "sae.k", sae.k, f"must be <= the SAE's latents, {latents} ({how})")


DISTRIBUTED = "ddp"
"""The one multi-process strategy: DDP through Lightning's launcher, which starts ranks 1.. by re-running the
command line; each rank then joins rank 0's fits (``artifacts.ensure_artifact``)."""


def check_strategy(cfg: DictConfig) -> None:
    """``trainer=ddp`` runs the SAE's fit (``stage=sae``) and a LoRA finetune's (``stage=experiment`` on a built SAE)
    on every device; what cannot run under it fails here, naming what to use instead."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if strategy in ("auto", "single_device"):
        return
    if strategy != DISTRIBUTED:
        raise ConfigError("trainer.strategy", strategy, "is not supported: use trainer=ddp (strategy ddp) for the "
                          "SAE stage and the LoRA finetunes, and one device (trainer=gpu or trainer=cpu) otherwise")
    if cfg.get("stage") == "experiment":
        from fac_lightning.finetune import FINETUNES
        if not FINETUNES.get(cfg.finetune.kind).cls.distributed:
            raise ConfigError("trainer", "ddp", f"runs the LoRA finetunes only; finetune={cfg.finetune.kind} fits "
                              "one device: use trainer=gpu")
        if not plan(cfg).sae.path.exists():  # the ranks would all redo the chain before the finetune's fit
            raise ConfigError("trainer", "ddp", "needs the SAE built first, so that only the finetune runs on every "
                              "device: run `python train.py stage=sae trainer=ddp` (same overrides), then this")
    elif cfg.get("stage") != "sae":
        raise ConfigError("trainer", "ddp", f"does not run stage={cfg.get('stage')}: use trainer=gpu")
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError("trainer", "ddp", "cannot run inside a -m sweep: Lightning's DDP launcher starts the other "
                          "ranks by re-running the command line, which would re-run the sweep. Train the SAE alone "
                          "(`python train.py stage=sae trainer=ddp`); the sweep then reuses it")


def preflight(cfg: DictConfig, sae: bool = True) -> None:
    """Fail now, naming the key, on anything that would fail after a model loads. ``sae``: the run needs the SAE
    (and, if it is not trained yet, its corpus)."""
    validate_config(cfg)
    if cfg.get("trainer") is not None:
        check_strategy(cfg)
    if not sae:
        return
    shape = backbone_shape(OmegaConf.to_object(cfg.backbone), cfg.paths.cache_dir)
    check_layer(cfg.backbone, shape)
    check_sae_width(cfg.sae, shape.d_model)
    if cfg.get("finetune") is not None:
        from fac_lightning.finetune.base import build_finetune

        build_finetune(cfg.finetune).preflight(plan(cfg).backbone, shape, cfg.paths.cache_dir)
    if not plan(cfg).sae.path.exists():
        for source in cfg.data.sources:
            check_source(source, cfg.paths.data_dir)
