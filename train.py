"""Entry point: ``python train.py`` runs the whole chain for a task (``stage=sae`` trains only the SAE);
add ``-m`` for a sweep, e.g. ``python train.py -m synthesis=fac,self_instruct,magpie seed=0,1,2``."""

import logging

import hydra
from omegaconf import DictConfig

from fac_lightning.config import register_configs
from fac_lightning.signals import stop_on_sigterm
from fac_lightning.stages.experiment import run_experiment
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.sae import run_sae_stage

log = logging.getLogger(__name__)
register_configs()



def train_sae(cfg: DictConfig):
    # every value, the layer, the SAE's width and its corpus, before any model loads
    return run_sae_stage(preflight(cfg, ("sae",)))


STAGES = {"sae": train_sae, "experiment": run_experiment}  # run_experiment plans and checks the whole chain first


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    stop_on_sigterm()
    if cfg.stage not in STAGES:
        raise ValueError(f"stage={cfg.stage!r} is unknown; choose from {sorted(STAGES)}")
    result = STAGES[cfg.stage](cfg)
    log.info("stage %s done: %s", cfg.stage, result)


if __name__ == "__main__":
    main()
