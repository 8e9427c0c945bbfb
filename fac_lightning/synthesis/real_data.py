"""Real data as strategies, so every leaderboard row comes through the same path: ``seed_only`` (the task's seed
part alone: the paper's "baseline" row) and ``full_dataset`` (a part of real training data, by default all real
task-positive rows; on toxicity also ToxicChat train as the in-distribution upper bound). One unit writes every
row of the part as it is, with its source's label; no generator, no budget."""

from dataclasses import dataclass

from fac_lightning.data.task_parts import task_part
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import RowWriter, Strategy, SynthesisConfig


@dataclass
class RealDataConfig(SynthesisConfig):
    part: str = "seed"
    """The task part (``task.parts``) whose rows are the training rows."""
    background: bool = True
    """Add the task's background rows (``task.background_part``) to the training set, as for every strategy; false
    when the part is a complete labelled training set of its own."""


class RealData(Strategy):
    generative = False
    budgeted = False
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")
    """Formats whose rows a task part's examples make (``RowFormat.from_example``)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.part, self.background = self.cfg.part, self.cfg.background

    def units(self):
        yield 0

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        for example in task_part(self.task, self.cfg.part, self.context.data_dir):
            writer.keep({**self.format.from_example(example),
                         "provenance": {"strategy": self.name, "part": self.cfg.part}})


@dataclass
class FullDatasetConfig(RealDataConfig):
    part: str = "full_dataset"


@STRATEGIES.register("seed_only", RealDataConfig)
class SeedOnly(RealData):
    pass


@STRATEGIES.register("full_dataset", FullDatasetConfig)
class FullDataset(RealData):
    pass
