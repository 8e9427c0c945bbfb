"""AlpacaEval judges (``benchmark/judge=alpaca_eval | logprob | reward_model | length``): one module per kind,
registered in ``JUDGES``. A judge compares a model's output with the reference output of the same instruction and
returns alpaca_eval's preference: a number in [1, 2], 1 = the reference (``output_1``) is better, 2 = the model's
output (``output_2``) is, 1.5 = a tie; NaN where the judge gave no verdict (alpaca_eval leaves those out)."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import MISSING, OmegaConf

from fac_lightning.checks import ConfigError
from fac_lightning.registry import Registry

JUDGES = Registry("AlpacaEval judge", "benchmark.judge.kind", __name__, group="benchmark/judge")


@dataclass
class JudgeConfig:
    kind: str = MISSING
    """Registered judge kind (``fac_lightning.evaluation.judges``)."""

    def requirements(self, data_dir) -> list:
        """What the judge reads, imports and calls (``fac_lightning.requirements``), checked before any model
        loads; keys under ``benchmark.judge``."""
        return []


class Judge:
    name = ""
    paid = False
    """True when every comparison costs an API call (the official annotator): the benchmark then does not spend
    calls on judging an empty answer for its trivial score."""

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg

    @property
    def label(self) -> str:
        """What the judge is, printed beside every number it produced (e.g. ``logprob:smollm2_135m``)."""
        raise NotImplementedError

    def preferences(self, instructions: list[str], references: list[str], outputs: list[str]) -> np.ndarray:
        """(N,) preferences in [1, 2] of ``outputs`` (output_2) over ``references`` (output_1)."""
        raise NotImplementedError


def annotator_requirements(annotator: str) -> list:
    """alpaca_eval, and the annotator's config file in it (``evaluators_configs/<name>/configs.yaml``)."""
    import importlib.util

    from fac_lightning.requirements import EVAL_EXTRA, DataFile, Package

    needed = [Package("benchmark/judge", "alpaca_eval", "alpaca_eval", EVAL_EXTRA)]
    if importlib.util.find_spec("alpaca_eval") is not None:  # else the package is what fails
        from alpaca_eval.constants import EVALUATORS_CONFIG_DIR

        needed.append(DataFile("benchmark.judge.annotator", annotator,
                               Path(EVALUATORS_CONFIG_DIR) / annotator / "configs.yaml", "alpaca_eval's annotator config"))
    return needed


def judge_config(node) -> JudgeConfig:
    """A judge node (a dict, a DictConfig or a judge Config object) as its kind's Config. An unknown kind fails naming
    ``benchmark.judge.kind``; a bad value as ``judge.<key>`` (the benchmark's config adds ``benchmark.``)."""
    kind = node.kind if isinstance(node, JudgeConfig) else node["kind"]
    entry = JUDGES.get(kind)
    if isinstance(node, JudgeConfig):
        if not isinstance(node, entry.config):
            raise ConfigError("judge.kind", kind, f"the judge node has the keys of {type(node).__name__}: choose a "
                              f"judge with benchmark/judge={kind} (which brings its own keys), not by its kind alone")
        return node
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(entry.config), node))
    except ConfigError as e:
        raise e.under("judge") from None


def build_judge(cfg: JudgeConfig) -> Judge:
    return JUDGES.get(cfg.kind).cls(cfg)


def cache_dir_of(cache_dir: str | None) -> Path:
    """Where converted backbones are cached: ``cache_dir``, else what ``paths.cache_dir`` defaults to
    (``$FAC_CACHE_DIR``, else ``~/.cache/fac_lightning``)."""
    return Path(cache_dir or os.environ.get("FAC_CACHE_DIR", Path.home() / ".cache" / "fac_lightning"))


__all__ = ["JUDGES", "Judge", "JudgeConfig", "build_judge", "cache_dir_of", "judge_config"]
