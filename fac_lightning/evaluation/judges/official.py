"""The ``alpaca_eval`` judge: alpaca_eval's own ``PairwiseAnnotator`` with one of its annotator configs (default
``weighted_alpaca_eval_gpt4_turbo``, AlpacaEval 2.0's: GPT-4-Turbo (``gpt-4-1106-preview``) asked which of two
outputs is better, in an order alpaca_eval shuffles with its seed, scored from the log-probabilities of its answer)
on any OpenAI-compatible endpoint. The OpenAI client is built from this config alone (``base_url``, the key in the
environment variable ``api_key_env``), not from alpaca_eval's client-config file or ``OPENAI_API_BASE``."""

import os
from dataclasses import dataclass

import numpy as np

from fac_lightning.checks import ConfigError
from fac_lightning.evaluation.judges import JUDGES, Judge, JudgeConfig, annotator_requirements
from fac_lightning.generation.openai_compatible import ENV_NAME, OPENAI_API
from fac_lightning.requirements import Endpoint


@dataclass
class AlpacaEvalJudgeConfig(JudgeConfig):
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"
    """alpaca_eval's annotator config (``evaluators_configs/<name>``); AlpacaEval 2.0's leaderboard uses the
    default."""
    model: str | None = None
    """The model name sent to the endpoint; None = the annotator config's own (gpt-4-1106-preview for the default).
    Another model is another judge: its numbers are not the leaderboard's."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (a vLLM server); None = OpenAI's API."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key (keys are never written to a config)."""

    def __post_init__(self):
        if not ENV_NAME.fullmatch(self.api_key_env):
            raise ConfigError("api_key_env", "<not shown>", "must be the NAME of the environment variable that holds "
                              "the API key (e.g. OPENAI_API_KEY), never the key itself")

    def requirements(self, data_dir):
        return [*annotator_requirements(self.annotator), Endpoint("benchmark.judge.base_url",
                                                                   self.base_url or OPENAI_API)]


@JUDGES.register("alpaca_eval", AlpacaEvalJudgeConfig)
class AlpacaEvalJudge(Judge):
    paid = True

    def __init__(self, cfg: AlpacaEvalJudgeConfig):
        super().__init__(cfg)
        from alpaca_eval.annotators import PairwiseAnnotator

        self.annotator = PairwiseAnnotator(annotators_config=cfg.annotator, caching_path=None)
        completions = self.annotator.annotators[cfg.annotator].completions_kwargs
        if cfg.model is not None:
            completions["model_name"] = cfg.model
        self.model = completions["model_name"]

    @property
    def label(self) -> str:
        return f"alpaca_eval:{self.cfg.annotator}:{self.model}"

    def preferences(self, instructions: list[str], references: list[str], outputs: list[str]) -> np.ndarray:
        key = os.environ.get(self.cfg.api_key_env)
        if key is None and self.cfg.base_url is None:
            raise ValueError(f"benchmark.judge.kind=alpaca_eval: the environment variable {self.cfg.api_key_env} "
                             f"(benchmark.judge.api_key_env) holds no OpenAI key")
        pairs = [{"instruction": i, "output_1": r, "output_2": o}
                 for i, r, o in zip(instructions, references, outputs, strict=True)]
        # client_config_path="" is no file: the client comes from these arguments (alpaca_eval's "backward
        # compatible" client construction), whatever client-config file or OPENAI_API_BASE the machine has.
        annotated = self.annotator.annotate_pairs(pairs, client_config_path="", openai_api_base=self.cfg.base_url,
                                                  openai_api_keys=[key or "none"])
        by_pair = {(a["instruction"], a["output_1"], a["output_2"]): a["preference"] for a in annotated}
        verdicts = [by_pair.get((p["instruction"], p["output_1"], p["output_2"])) for p in pairs]
        return np.array([np.nan if v is None else float(v) for v in verdicts])
