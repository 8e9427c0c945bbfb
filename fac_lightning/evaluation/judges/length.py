"""The ``length`` judge: the longer answer wins (characters; equal lengths tie). The trivial baseline that shows what
an agreement number means: GPT-4-Turbo prefers longer answers (why AlpacaEval 2.0 controls for length), and on the
mirror's official annotations it prefers the (longer) reference in ~97 % of the comparisons."""

from dataclasses import dataclass

import numpy as np

from fac_lightning.evaluation.judges import JUDGES, Judge, JudgeConfig


@dataclass
class LengthJudgeConfig(JudgeConfig):
    pass


@JUDGES.register("length", LengthJudgeConfig)
class LengthJudge(Judge):
    @property
    def label(self) -> str:
        return "length"

    def preferences(self, instructions: list[str], references: list[str], outputs: list[str]) -> np.ndarray:
        longer_N = np.sign([len(o) - len(r) for r, o in zip(references, outputs, strict=True)])
        return 1.5 + 0.5 * longer_N.astype(np.float64)
