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
from fac_lightning.plan import RunPlan
from fac_lightning.stages.feature_space import build_feature_space
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.sae import run_sae_stage

log = logging.getLogger(__name__)

def upstream_key(run: RunPlan) -> str:
    """The shared artifacts' names (``plan.RunPlan``): equal for two jobs exactly when they share them."""
    return run.sae.name if run.stage == "sae" else f"{run.relevant.name}/{run.seed_table.name}"


def build_shared(run: RunPlan, backbone) -> None:
    """What every job with ``run``'s upstream builds first: the SAE (``stage=sae``), or the feature space and the
    seed table."""
    if run.stage == "sae":
        run_sae_stage(run, backbone)
        return
    build_feature_space(run, backbone).table(run.seed_table.label, run.seed_conversations)


def prepare_shared(configs: list[DictConfig]) -> int:
    """Build the shared upstream artifacts of the jobs ``configs`` (composed job configs), each distinct one once;
    returns how many distinct upstreams there were."""
    distinct: dict[str, RunPlan] = {}
    for i, cfg in enumerate(configs):
        try:
            run = preflight(cfg, ("sae",) if cfg.stage == "sae" else ("sae", "feature_space"))  # what it builds here
            key = upstream_key(run)
        except Exception as e:  # noqa: BLE001 - any failed check: the job reports it when it runs
            log.warning("sweep job #%d fails its checks (%s); its shared artifacts are not prepared", i, e)
            continue
        distinct.setdefault(key, run)
    by_backbone: dict[str, list[RunPlan]] = {}
    for run in distinct.values():
        by_backbone.setdefault(config_hash(run.backbone), []).append(run)
    for group in by_backbone.values():
        backbone = load_backbone(group[0].backbone, group[0].paths.cache_dir)
        for n, run in enumerate(group, start=1):
            log.info("preparing the sweep's shared artifacts (%s, %d/%d): %s", run.backbone.name, n, len(group),
                     "SAE" if run.stage == "sae" else f"SAE, {run.task.name} anchor and seed tables, relevance")
            build_shared(run, backbone)
        del backbone  # freed before the next backbone loads
    return len(distinct)
