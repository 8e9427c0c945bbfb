"""Held-out preference pairs (``benchmark=hh_pairs``: HH-RLHF helpful-base rows no task part uses): the share of
pairs whose chosen answer gets the higher reward (ties count as wrong, as in RewardBench). Random preference scores
0.5 on average: the trivial score (``base_rate``)."""

from dataclasses import dataclass

from omegaconf import MISSING

from fac_lightning.config import SourceConfig
from fac_lightning.data.conversations import load_examples, source_origin
from fac_lightning.evaluation import BENCHMARKS
from fac_lightning.evaluation.base import Benchmark, BenchmarkConfig
from fac_lightning.evaluation.reward_bench import pair_accuracy
from fac_lightning.requirements import Source
from fac_lightning.rows.preference_pair import PreferencePair


@dataclass
class PreferencePairsConfig(BenchmarkConfig):
    source: SourceConfig = MISSING
    """A preference-pair source (``field`` = chosen, ``rejected_field`` = rejected)."""


@BENCHMARKS.register("preference_pairs", PreferencePairsConfig)
class PreferencePairsBenchmark(Benchmark):
    needs = "reward_model"
    primary = "accuracy"

    def requirements(self, task):
        return [Source("benchmark.source", self.cfg.source, self.data_dir)]

    def evaluate(self, model) -> dict:
        if not self.cfg.source.rejected_field:
            raise ValueError(f"benchmark={self.cfg.name}: benchmark.source.rejected_field is not set (a preference-"
                             f"pair source names the column of the rejected conversation)")
        rows = [PreferencePair().from_example(e) for e in load_examples(self.cfg.source, self.data_dir)]
        source_rows = len(rows)
        rows = rows[: self.cfg.limit]
        correct = pair_accuracy(model, rows)
        return {"source": source_origin(self.cfg.source, self.data_dir), "source_rows": source_rows,
                "examples": len(rows), "limit": self.cfg.limit, "base_rate": 0.5,
                "metrics": {"accuracy": float(correct.mean())}}
