"""The ``reward_model`` judge: a saved reward model of the reward task (``finetune=reward_head | reward_lora``, a
Bradley-Terry model) scores instruction + reference and instruction + output as single-turn chats; the preference is
the Bradley-Terry probability that the output is better, 1 + σ(r_output - r_reference)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from fac_lightning.evaluation.judges import JUDGES, Judge, JudgeConfig, cache_dir_of
from fac_lightning.requirements import SavedModel


@dataclass
class RewardModelJudgeConfig(JudgeConfig):
    model: str = MISSING
    """A saved reward model folder (its ``model.json``), its adapter folder or the ``train.py`` run folder that
    trained it, e.g. ``python train.py task=reward synthesis=full_dataset finetune=reward_head``."""
    cache_dir: str | None = None
    """Converted backbones (the reward model's backbone is loaded from its model.json); None = ``paths.cache_dir``'s
    default (``$FAC_CACHE_DIR``, else ``~/.cache/fac_lightning``)."""

    def requirements(self, data_dir):
        return [SavedModel("benchmark.judge.model", self.model, "; give a saved reward model, e.g. from python "
                           "train.py task=reward synthesis=full_dataset finetune=reward_head", "reward_model")]


@JUDGES.register("reward_model", RewardModelJudgeConfig)
class RewardModelJudge(Judge):
    def __init__(self, cfg: RewardModelJudgeConfig):
        super().__init__(cfg)
        from fac_lightning.finetune.base import load_model, model_folder

        self.folder = model_folder(cfg.model)
        self.model = load_model(self.folder, cache_dir_of(cfg.cache_dir))
        if not hasattr(self.model, "score"):
            raise ValueError(f"benchmark.judge.model={cfg.model}: not a reward model (a {type(self.model).__name__})")

    @property
    def label(self) -> str:
        return f"reward_model:{Path(self.folder).name}"

    def preferences(self, instructions: list[str], references: list[str], outputs: list[str]) -> np.ndarray:
        n = len(instructions)
        conversations = [[{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
                         for answers in (references, outputs) for instruction, answer in zip(instructions, answers,
                                                                                              strict=True)]
        rewards_2N = np.asarray(self.model.score(conversations), dtype=np.float64)
        reference_N, output_N = rewards_2N[:n], rewards_2N[n:]
        return 1.0 + 1.0 / (1.0 + np.exp(reference_N - output_N))
