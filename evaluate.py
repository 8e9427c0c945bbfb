"""Entry point: measure a data set in feature space, write feature cards, benchmark a saved model, or build a
sweep's leaderboard or HTML report (``fac_lightning.stages.evaluate``).

    python evaluate.py mode=dataset dataset=<file.jsonl | conf/data name> task=toxicity
    python evaluate.py mode=features task=toxicity relevance=llm_judge
    python evaluate.py mode=benchmark model=<saved model folder | train.py run folder> [benchmark=moderation]
    python evaluate.py mode=leaderboard runs=<folder with runs' metrics.json | wandb:<entity>/<project>/<group>>
    python evaluate.py mode=report runs=<sweep folder>      # report.html in the sweep folder
"""

import hydra
from omegaconf import DictConfig

from fac_lightning.config import register_configs
from fac_lightning.signals import stop_on_sigterm
from fac_lightning.stages.evaluate import run_evaluate

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    stop_on_sigterm()
    run_evaluate(cfg)


if __name__ == "__main__":
    main()
