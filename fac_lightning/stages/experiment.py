"""The whole chain for any task (``python train.py``): SAE -> anchor features -> relevance -> the strategy's rows
(synthetic or real) -> finetune -> benchmark -> one logged run.

``preflight`` plans the run: it builds the strategy, finetune and benchmark, checks that they fit together (the task's
row format is one the finetune consumes; the benchmark needs the model kind the finetune produces) and that everything
they read, import and call is there, before any model loads. Every stage is a cached, resumable artifact. The run's
metrics go to ``<output_dir>/metrics.json`` and to the configured logger, which also receives the finetune's loss
curve.
"""

import logging
import random
import time
from pathlib import Path

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fac_lightning.artifacts import process_rank, write_json_atomic
from fac_lightning.backbone import load_backbone
from fac_lightning.data.task_parts import task_part
from fac_lightning.evaluation.base import run_benchmark
from fac_lightning.files import read_json
from fac_lightning.finetune.base import train_model
from fac_lightning.leaderboard import leaderboard, run_record
from fac_lightning.loggers import run_logger
from fac_lightning.plan import RunPlan
from fac_lightning.stages.g_vendi import measure_g_vendi
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.synthesis import read_row_set, run_synthesis_stage
from fac_lightning.synthesis.base import Strategy

log = logging.getLogger(__name__)


def background_rows(run: RunPlan) -> list[dict]:
    """The task's background rows (toxicity: real safe requests), drawn by the run seed."""
    task, strategy = run.task, run.strategy
    if task.background_part is None or not strategy.background:
        return []
    examples = task_part(task, task.background_part, run.data_dir)
    drawn = random.Random(run.seed).sample(examples, min(task.background_rows, len(examples)))
    return [strategy.format.from_example(e) for e in drawn]


def run_overrides() -> list[str]:
    """This run's command-line overrides (what a sweep varies); none outside a Hydra app."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def strategy_row_name(strategy: Strategy) -> str:
    """The leaderboard's strategy: the ``synthesis=`` option (two options of one strategy stay apart), or the
    strategy's name outside a Hydra app."""
    return HydraConfig.get().runtime.choices["synthesis"] if HydraConfig.initialized() else strategy.name


def log_run(logger, run: RunPlan, result: dict) -> None:
    """The run's config, what it compared and its measurements, to the configured logger."""
    if logger is None:
        return
    bench = result["benchmark"]
    logger.log_hyperparams({**run.config, "run": {
        "task": result["task"], "strategy": result["strategy"], "seed": run.seed, "overrides": result["overrides"],
        "benchmark": bench["name"], "primary": bench["primary"], "examples": bench["examples"],
        "base_rate": bench.get("base_rate"), "train_rows": result["train_rows"]}})
    logger.log_metrics({**{f"fac/{k}": v for k, v in result["fac"].items()},
                        **({"g_vendi": result["g_vendi"]} if result["g_vendi"] is not None else {}),
                        **{f"text/{k}": v for k, v in result["text"].items()},
                        **{f"benchmark/{k}": v for k, v in bench["metrics"].items()},
                        **{f"timings_s/{k}": v for k, v in result["timings_s"].items()}})


def run_experiment(cfg: DictConfig) -> dict:
    run = preflight(cfg)
    timings, started = {}, time.time()

    def lap(name: str) -> None:
        timings[name] = round(time.time() - started - sum(timings.values()), 1)

    backbone = load_backbone(run.backbone, run.paths.cache_dir)
    rows_dir = run_synthesis_stage(run, backbone)
    manifest = read_json(rows_dir / "manifest.json")
    rows = [{k: v for k, v in r.items() if k != "provenance"} for r in read_row_set(rows_dir)]
    lap("feature_space_and_rows")
    # before the finetune (which may wrap the backbone); DDP ranks > 0 only join the finetune's fit
    g_vendi = measure_g_vendi(run, backbone, rows_dir) if process_rank() == 0 else None
    lap("g_vendi")
    with run_logger(run.logger) as logger:  # after the SAE stage, which logs (and closes) a run of its own
        background = background_rows(run)
        model_dir = train_model(run, rows + background, backbone, logger, provenance={
            "strategy": strategy_row_name(run.strategy), "rows": str(rows_dir), "strategy_rows": len(rows),
            "background_part": run.strategy.task.background_part if background else None,
            "background_rows": len(background)})
        train_rows = rows + background
        if process_rank() > 0:  # a DDP rank > 0 (started for the finetune's fit): rank 0 benchmarks and records
            return {"rank": process_rank(), "model": str(model_dir)}
        lap("finetune")
        bench = run_benchmark(run.benchmark, run.finetune.load(model_dir, backbone), run.paths.output_dir)
        lap("benchmark")
        result = {
            "task": run.task.name, "strategy": strategy_row_name(run.strategy), "seed": run.seed,
            "backbone": run.backbone.name, "finetune": run.finetune.name, "n_samples": run.n_samples,
            "delta": run.features.delta, "relevance": run.relevance.method, "overrides": run_overrides(),
            "strategy_rows": len(rows), "train_rows": len(train_rows), "synthetic": str(rows_dir),
            "model": str(model_dir), "fac": manifest["fac"], "g_vendi": g_vendi, "text": manifest["text"],
            "benchmark": bench,
            "timings_s": timings,
        }
        write_json_atomic(Path(run.paths.output_dir) / "metrics.json", result)
        log_run(logger, run, result)
    row = leaderboard(pd.DataFrame([run_record(result, run.paths.output_dir)]))
    log.info("this run's leaderboard row (benchmark=%s, %d examples, base rate %s; a sweep's table: evaluate.py "
             "mode=leaderboard):\n%s", bench["name"], bench["examples"], bench.get("base_rate"),
             row.to_markdown(index=False))
    return result
