"""The "longer answer wins" reward model on a reward benchmark: what a reward model that learned only answer length
would score (a diagnostic for reward benchmarks whose rejected answers are the longer ones).

    python benchmarks/length_baseline.py benchmark=rewardbench_offline
    python benchmarks/length_baseline.py benchmark=hh_pairs
"""

import sys

import numpy as np

from fac_lightning.config import compose_config, register_configs
from fac_lightning.evaluation.base import build_benchmark


class LongerAnswerWins:
    """Reward = words in the conversation's last message."""

    def score(self, conversations):
        return np.array([len(c[-1]["content"].split()) for c in conversations], dtype=float)


if __name__ == "__main__":
    register_configs()
    cfg = compose_config(["task=reward", "finetune=reward_head", *sys.argv[1:]])
    result = build_benchmark(cfg.benchmark, cfg.paths.data_dir).evaluate(LongerAnswerWins())
    print(f"{cfg.benchmark.name} ({result['examples']} pairs), reward = answer length in words:")
    for name, value in result["metrics"].items():
        print(f"  {name:32s} {value:.3f}")
