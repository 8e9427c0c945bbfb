"""lm-evaluation-harness on a chat model (``benchmark=lm_eval``): ``lm_eval.simple_evaluate`` with the model in memory
(``HFLM(pretrained=<the merged model>)``) on any task list. A task name with a YAML file in ``lm_eval_tasks/`` (beside
this module, in lm-eval's own task format) is a local task over the data mirror (its ``dataset_kwargs.data_dir`` is
set to ``paths.data_dir``; e.g. CAA's A/B items as multiple choice); any other name is an lm-eval task as lm-eval
ships it (those read the hub).

Metrics: each task's ``metric`` (``<task>/<metric>`` and its standard error), and ``average``, their unweighted
mean (the primary metric)."""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fac_lightning.checks import require
from fac_lightning.evaluation import BENCHMARKS
from fac_lightning.evaluation.base import Benchmark, BenchmarkConfig
from fac_lightning.requirements import EVAL_EXTRA, Package

LOCAL_TASKS = Path(__file__).resolve().parent / "lm_eval_tasks"


@dataclass
class LMEvalConfig(BenchmarkConfig):
    tasks: list[str] = field(default_factory=lambda: ["caa_ab_sycophancy", "caa_ab_survival_instinct"])
    """lm-eval task names; those with a ``lm_eval_tasks/<name>.yaml`` are read from the mirror."""
    metric: str = "acc"
    """The metric read from each task's results."""
    num_fewshot: int | None = None
    """Few-shot examples per prompt (None = each task's default)."""
    apply_chat_template: bool = True
    """Wrap each prompt in the model's chat template (a chat model answers in its turn format)."""
    batch_size: int = 8
    base_rate: float | None = None
    """What chance scores on this task list, reported beside the results (0.5 for two-choice tasks)."""

    def __post_init__(self):
        super().__post_init__()
        require(len(self.tasks) > 0, "tasks", list(self.tasks), "must name at least one lm-eval task")


def task_spec(name: str, data_dir: str | Path) -> str | dict:
    """A local task's config (from ``lm_eval_tasks/``, reading the mirror) or the name of an lm-eval task."""
    path = LOCAL_TASKS / f"{name}.yaml"
    if not path.exists():
        return name
    spec = yaml.safe_load(path.read_text())
    spec["dataset_kwargs"] = {**spec.get("dataset_kwargs", {}), "data_dir": str(data_dir)}
    return spec


@BENCHMARKS.register("lm_eval", LMEvalConfig)
class LMEvalBenchmark(Benchmark):
    needs = "chat_model"
    primary = "average"

    def requirements(self, task):
        return [Package("benchmark", self.cfg.name, "lm_eval", EVAL_EXTRA)]

    def evaluate(self, model) -> dict:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        lm = HFLM(pretrained=model.model, tokenizer=model.tokenizer, batch_size=self.cfg.batch_size,
                  device=str(model.model.device))
        out = simple_evaluate(model=lm, tasks=[task_spec(t, self.data_dir) for t in self.cfg.tasks],
                              num_fewshot=self.cfg.num_fewshot, limit=self.cfg.limit,
                              apply_chat_template=self.cfg.apply_chat_template, log_samples=False,
                              bootstrap_iters=1000)
        metric = self.cfg.metric
        metrics, examples = {}, 0
        for task in self.cfg.tasks:
            scores = out["results"][task]
            metrics[f"{task}/{metric}"] = float(scores[f"{metric},none"])
            metrics[f"{task}/{metric}_stderr"] = float(scores[f"{metric}_stderr,none"])
            examples += int(out["n-samples"][task]["effective"])
        metrics["average"] = sum(metrics[f"{t}/{metric}"] for t in self.cfg.tasks) / len(self.cfg.tasks)
        return {"model": model.name, "tasks": list(self.cfg.tasks), "examples": examples, "limit": self.cfg.limit,
                "lm_eval_version": out.get("lm_eval_version") or _version(), "base_rate": self.cfg.base_rate,
                "metrics": metrics}


def _version() -> str:
    from importlib.metadata import version

    return version("lm_eval")
