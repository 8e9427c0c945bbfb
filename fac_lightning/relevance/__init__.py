"""Task relevance of SAE features (``relevance=label_contrast | llm_judge | all``): one module per method,
registered in ``RELEVANCE``. A method maps (anchor table, labels, delta, rubric) to the relevant features R, an (F,)
bool mask, and a per-feature record of its evidence (statistics or judge verdicts)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from fac_lightning.registry import Registry

RELEVANCE = Registry("relevance method", "relevance.method", __name__, group="relevance")


@dataclass
class RelevanceConfig:
    method: str = MISSING
    """Registered method (``fac_lightning.relevance``)."""


class RelevanceMethod:
    uses_generator = False
    """Whether it asks a generator (then the generator config is part of its cache key)."""
    version = 1
    """Part of its selections' keys: bump it when a change of the method's code changes R on the same table."""

    def __init__(self, cfg: RelevanceConfig):
        self.cfg = cfg

    def select(self, anchor, labels, delta, rubric, make_generator, cache_file) -> tuple[np.ndarray, dict[int, dict]]:
        raise NotImplementedError


def select_relevant(cfg: RelevanceConfig, anchor, labels: np.ndarray, delta: float, rubric: str,
                    make_generator: Callable, cache_file: str | Path) -> tuple[np.ndarray, dict[int, dict]]:
    """Relevant features R and their records, by the configured method."""
    return RELEVANCE.get(cfg.method).cls(cfg).select(anchor, labels, delta, rubric, make_generator, cache_file)
