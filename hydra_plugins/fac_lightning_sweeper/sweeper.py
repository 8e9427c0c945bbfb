"""Hydra's basic sweeper (the same job list, batches and launcher: basic, joblib, submitit) with what a sweep on
several workers needs:

- before any job starts, the shared upstream artifacts of every job (SAE, anchor and seed feature tables,
  relevance) are built once, in this process (``fac_lightning.stages.prepare``); ``hydra.sweeper.prepare=false``
  leaves them to the jobs, which then wait on each artifact's lock;
- a failed job does not stop the sweep: the other jobs run, the leaderboard of the finished ones is printed and
  written into the sweep folder (naming the jobs without results), and then the sweep fails, naming each failed job
  and its error.
"""

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobRuntime, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class FacSweeperConf:
    _target_: str = "hydra_plugins.fac_lightning_sweeper.sweeper.FacSweeper"
    max_batch_size: int | None = None
    """Jobs handed to the launcher at once (None: all)."""
    params: dict[str, str] | None = None
    """Swept keys, as the basic sweeper's (``hydra.sweeper.params`` in an experiment)."""
    prepare: bool = True
    """Build the jobs' shared upstream artifacts once, in the launching process, before the jobs start."""


ConfigStore.instance().store(group="hydra/sweeper", name="fac", node=FacSweeperConf, provider="fac_lightning")


class SweepFailed(RuntimeError):
    """Some jobs of a sweep failed (the others ran, and their leaderboard was written)."""


class FacSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 prepare: bool = True) -> None:
        super().__init__(max_batch_size, params)
        self.prepare = prepare

    def job_configs(self, batches: list[list[list[str]]]) -> list[DictConfig]:
        """Every job's config as its task function receives it (composed as the launcher composes it, without the
        ``hydra`` node), writing its logs under ``<sweep folder>/prepare``."""
        configs = []
        for num, overrides in enumerate(job for batch in batches for job in batch):
            full = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(full):  # what the launcher sets before a job runs (the loggers' settings read them)
                full.hydra.job.name, full.hydra.job.num = JobRuntime.instance().get("name"), num
                full.hydra.job.id = f"prepare_{num}"
            if num == 0:  # ${hydra:...} in the jobs' configs reads it; the launcher sets each job's own later
                HydraConfig.instance().set_config(full)
            cfg = copy.deepcopy(full)
            with open_dict(cfg):
                del cfg["hydra"]
                cfg.paths.output_dir = str(Path(self.config.hydra.sweep.dir) / "prepare")
            configs.append(cfg)
        return configs

    def prepare_shared(self, batches: list[list[list[str]]]) -> None:
        from fac_lightning.stages.prepare import prepare_shared

        configs = [c for c in self.job_configs(batches) if c.get("stage") in ("sae", "experiment")]
        if configs:
            prepare_shared(configs)

    def sweep(self, arguments: list[str]) -> Any:
        """``BasicSweeper.sweep`` with the preparation first and the failures collected (see the module doc)."""
        params = self._parse_config()
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if self.prepare:
            self.prepare_shared(self.overrides)
        returns, failed, initial_job_idx = [], [], 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            failed += [(initial_job_idx + i, overrides, r._return_value)
                       for i, (overrides, r) in enumerate(zip(batch, results)) if r.status == JobStatus.FAILED]
            initial_job_idx += len(batch)
            returns.append(results)
        self.report(sweep_dir, failed, initial_job_idx)
        return returns

    def report(self, sweep_dir: Path, failed: list[tuple[int, list[str], BaseException]], jobs: int) -> None:
        """Print and write the leaderboard of the finished jobs; then fail if any job failed, naming each by the
        overrides that tell it apart from the other jobs."""
        from fac_lightning.leaderboard import distinguishing, write_leaderboard
        from fac_lightning.report import log_report_to_wandb, write_report

        if any(sweep_dir.rglob("metrics.json")):
            print(write_leaderboard(sweep_dir, sweep_dir)["markdown"])
            try:  # the jobs' results stand without the page: a failure here is reported, not raised
                report = write_report(sweep_dir, sweep_dir)
            except Exception as e:  # noqa: BLE001
                log.warning("the sweep's report was not written (%s: %s); python evaluate.py mode=report "
                            "runs=%s retries it", type(e).__name__, e, sweep_dir)
            else:
                print(f"report: {report.resolve()} (open it in a browser)")
                logger = self.config.get("logger") or {}
                if str(logger.get("_target_", "")).endswith("WandbLogger"):  # the sweep's W&B group gets it too
                    log_report_to_wandb(report, logger.get("project"), sweep_dir.name, bool(logger.get("offline")),
                                        logger.get("entity"))
        if failed:
            every_job = [list(job) for batch in self.overrides for job in batch]
            told_apart = distinguishing(every_job)
            named = "\n".join(f"  #{i} ({' '.join(told_apart[i])}): {type(e).__name__}: {e}" for i, _, e in failed)
            raise SweepFailed(f"{len(failed)} of {jobs} sweep jobs failed (the leaderboard above, written to "
                              f"{sweep_dir}, has the others):\n{named}")
