"""The Benchmark contract: a benchmark ``needs`` a model kind (what a finetune ``produces``), evaluates such a model
and returns ``{"name", "primary", "examples", "metrics": {...}, ...}`` (``primary`` names the metric a leaderboard
ranks by, higher is better), which ``run_benchmark`` also writes as ``benchmark_<name>.json``."""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING, DictConfig

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.checks import at_least
from fac_lightning.config import component_config
from fac_lightning.evaluation import BENCHMARKS


@dataclass
class BenchmarkConfig:
    kind: str = MISSING
    """Registered benchmark kind (``fac_lightning.evaluation``)."""
    name: str = MISSING
    """This benchmark's name in metrics files and leaderboards (e.g. toxicchat)."""
    limit: int | None = None
    """Evaluate on the first ``limit`` examples only (recorded in the metrics; never applied silently)."""

    def __post_init__(self):
        at_least(self, 1, "limit")


class Benchmark:
    name = ""
    needs = ""
    """The model kind it evaluates (``Finetune.produces``)."""
    primary = ""
    """The metric a leaderboard ranks by."""
    out_dir: Path | None = None
    """The folder ``run_benchmark`` writes the result into; a benchmark that keeps more than its metrics (alpacaeval:
    the model's outputs and the judge's annotations) writes it there."""

    def __init__(self, cfg: BenchmarkConfig, data_dir: str | Path):
        self.cfg, self.data_dir = cfg, data_dir

    def evaluate(self, model) -> dict:
        raise NotImplementedError

    def check_task(self, task, data_dir: str | Path) -> None:
        """Refuse, before any stage runs, a task whose data holds this benchmark's test items (a benchmark whose
        items a task could read, e.g. AlpacaEval's instructions, overrides this)."""


def build_benchmark(cfg: DictConfig, data_dir: str | Path) -> Benchmark:
    return BENCHMARKS.get(cfg.kind).cls(component_config(cfg, BENCHMARKS), data_dir)


def run_benchmark(benchmark: Benchmark, model, out_dir: str | Path) -> dict:
    benchmark.out_dir = Path(out_dir)
    result = {"name": benchmark.cfg.name, "kind": benchmark.name, "primary": benchmark.primary,
              **benchmark.evaluate(model)}
    write_json_atomic(Path(out_dir) / f"benchmark_{benchmark.cfg.name}.json", result)
    return result
