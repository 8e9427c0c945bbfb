"""A sweep's shared upstream artifacts, built once before its jobs run (``hydra/sweeper=fac``).

The jobs of a sweep that differ only downstream (strategy, seed, budget, finetune) share the SAE, the task's anchor
and seed feature tables and its relevance selection. On parallel workers the first job to need one would build it
while the others wait on its lock, each holding a GPU idle. ``prepare_shared`` builds each of them once, in the
calling process (the launcher's), loading each distinct backbone once. The artifacts' locks stay the safety net.
A job whose config fails its checks is skipped here: the job itself fails with that message.
"""

import logging

from omegaconf import DictConfig

from fac_lightning.artifacts import config_hash
from fac_lightning.backbone import load_backbone
from fac_lightning.data.task_parts import task_part
from fac_lightning.plan import plan
from fac_lightning.stages.feature_space import build_feature_space
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.sae import run_sae_stage

log = logging.getLogger(__name__)

def upstream_key(cfg: DictConfig) -> str:
    """The shared artifacts' names (``plan.RunPlan``): equal for two jobs exactly when they share them."""
    run = plan(cfg)
    return run.sae.name if cfg.stage == "sae" else f"{run.relevant.name}/{run.seed.name}"


def build_shared(cfg: DictConfig, backbone) -> None:
    """What every job with ``cfg``'s upstream builds first: the SAE (``stage=sae``), or the feature space and the
    seed table."""
    if cfg.stage == "sae":
        run_sae_stage(cfg, backbone)
        return
    space = build_feature_space(cfg, backbone)
    space.table(f"{cfg.task.name}-seed", [e.conversation for e in task_part(cfg.task, "seed", cfg.paths.data_dir)],
                cfg)


def prepare_shared(configs: list[DictConfig]) -> int:
    """Build the shared upstream artifacts of the jobs ``configs`` (composed job configs), each distinct one once;
    returns how many distinct upstreams there were."""
    distinct: dict[str, DictConfig] = {}
    for i, cfg in enumerate(configs):
        try:
            preflight(cfg, ("sae",) if cfg.stage == "sae" else ("sae", "feature_space"))  # what it builds here
            key = upstream_key(cfg)
        except Exception as e:  # noqa: BLE001 - any failed check: the job reports it when it runs
            log.warning("sweep job #%d fails its checks (%s); its shared artifacts are not prepared", i, e)
            continue
        distinct.setdefault(key, cfg)
    by_backbone: dict[str, list[DictConfig]] = {}
    for cfg in distinct.values():
        by_backbone.setdefault(config_hash(cfg.backbone), []).append(cfg)
    for group in by_backbone.values():
        backbone = load_backbone(group[0].backbone, group[0].paths.cache_dir)
        for n, cfg in enumerate(group, start=1):
            log.info("preparing the sweep's shared artifacts (%s, %d/%d): %s", cfg.backbone.name, n, len(group),
                     "SAE" if cfg.stage == "sae" else f"SAE, {cfg.task.name} anchor and seed tables, relevance")
            build_shared(cfg, backbone)
        del backbone  # freed before the next backbone loads
    return len(distinct)
