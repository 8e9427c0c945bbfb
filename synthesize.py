"""Entry point: ``python synthesize.py task=toxicity synthesis=fac n_samples=50`` writes a row set and its FAC
(``synthesis=self_instruct | magpie`` for the baselines, ``seed_only | full_dataset`` for real rows;
``generator=vllm | openai`` for other engines)."""

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.config import register_configs
from fac_lightning.signals import stop_on_sigterm
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.synthesis import SYNTHESIS, run_synthesis_stage

log = logging.getLogger(__name__)
register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    stop_on_sigterm()
    run = preflight(cfg, SYNTHESIS)  # everything the synthesis reads, imports and calls, before any model loads
    folder = run_synthesis_stage(run)
    # the run's record, as train.py's metrics.json (benchmarks/sample_rows.py and synthesis_cost.py read them)
    write_json_atomic(Path(run.paths.output_dir) / "synthesis.json", {
        "task": run.task.name, "strategy": HydraConfig.get().runtime.choices["synthesis"], "seed": run.seed,
        "synthetic": str(folder)})
    print(f"synthetic data set: {folder / 'rows.jsonl'}\nmanifest: {folder / 'manifest.json'}")


if __name__ == "__main__":
    main()
