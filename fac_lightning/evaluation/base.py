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

    def requirements(self, task: str | None) -> list:
        """What it reads and imports (``fac_lightning.requirements``), checked before any model loads; ``task``: the
        task the evaluated model was trained for, where the run knows it."""
        return []

    def check_task(self, task, data_dir: str | Path) -> None:
        """Refuse, before any stage runs, a task whose data holds this benchmark's test items (a benchmark whose
        items a task could read, e.g. AlpacaEval's instructions, overrides this)."""


def build_benchmark(cfg: DictConfig, data_dir: str | Path) -> Benchmark:
    return BENCHMARKS.get(cfg.kind).cls(component_config(cfg, BENCHMARKS), data_dir)


def check_result(benchmark: Benchmark, result) -> None:
    """What every benchmark's ``evaluate`` returns, checked where it returns it (so a benchmark that leaves a field out
    fails in its own test, not in a leaderboard after a finetune): a dict with ``examples``, the number of items
    evaluated, and ``metrics``, numbers that include the benchmark's ``primary``."""
    where = f"benchmark {benchmark.cfg.name!r} (kind {benchmark.name})"
    if not isinstance(result, dict):
        raise TypeError(f"{where}: evaluate() returned {type(result).__name__}, not a dict")
    if not isinstance(result.get("examples"), int) or result["examples"] < 0:
        raise TypeError(f"{where}: its result's 'examples' must be the number of items evaluated, got "
                        f"{result.get('examples')!r}")
    metrics = result.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get(benchmark.primary), int | float):
        raise TypeError(f"{where}: its result's 'metrics' must hold its primary metric {benchmark.primary!r} as a "
                        f"number, got {metrics!r}")


def run_benchmark(benchmark: Benchmark, model, out_dir: str | Path) -> dict:
    benchmark.out_dir = Path(out_dir)
    evaluated = benchmark.evaluate(model)
    check_result(benchmark, evaluated)
    result = {"name": benchmark.cfg.name, "kind": benchmark.name, "primary": benchmark.primary, **evaluated}
    write_json_atomic(Path(out_dir) / f"benchmark_{benchmark.cfg.name}.json", result)
    return result
