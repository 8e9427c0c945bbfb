"""AlpacaEval 2.0 (``benchmark=alpacaeval``) for a ``chat_model``: the model answers the 805 AlpacaEval instructions
(each a single user turn through its chat template), a judge compares each answer with the reference answer of
``gpt4_1106_preview`` (alpaca_eval's preference: 1 = reference better, 2 = the model's), and alpaca_eval itself
computes the win rates from those preferences (``alpaca_eval.metrics``, never re-implemented here):

- ``win_rate`` (WR) and ``standard_error``: ``get_winrate`` (mean of preference - 1, in %; ties count half);
- ``length_controlled_winrate`` (LC, the primary metric) and ``lc_standard_error``: ``get_length_controlled_winrate``,
  the GLM of AlpacaEval 2.0 (``length_controlled_v1``) that predicts the win rate at equal output length. Its fit reads
  ``df_gamed.csv`` (per-instruction difficulties and the annotations of two length-gamed baselines) from the hub
  dataset ``tatsu-lab/alpaca_eval``; ``glm_data`` names a local copy read instead (the data mirror has none). Without
  either, run with ``benchmark.length_controlled=false`` (primary: ``win_rate``);
- ``avg_length``: the mean output length in characters, as alpaca_eval's leaderboard reports it.

Every result names its judge (``judge``): numbers from different judges are not comparable, and only
``weighted_alpaca_eval_gpt4_turbo`` (``benchmark/judge=alpaca_eval``) gives leaderboard numbers. The offline judges'
agreement with it is measured by ``benchmarks/judge_agreement.py`` (``benchmarks/RESULTS.md``, issue 14).

``base_rate``: the trivial score, the win rate the judge gives a constant empty answer on the same instructions,
measured for every offline judge (the length judge: 0; the reward-model judge: 13.9-15.8 as measured); for the official judge it is
0 by construction (its reference answers are never empty) and not spent API calls on.

The model's outputs (``model_outputs.json``: instruction, output, generator, dataset) and the judge's annotations
(``annotations.json``: instruction, output_1 / generator_1 = the reference, output_2 / generator_2 = the model,
annotator, preference) are written in alpaca_eval's own formats into ``alpacaeval_<name>/`` beside the benchmark's
metrics, so ``alpaca_eval evaluate --model_outputs …`` can re-judge them.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import MISSING

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.checks import ConfigError, at_least, within
from fac_lightning.config import SourceConfig
from fac_lightning.data.conversations import load_conversations, load_rows
from fac_lightning.evaluation import BENCHMARKS
from fac_lightning.evaluation.base import Benchmark, BenchmarkConfig
from fac_lightning.evaluation.judges import build_judge, judge_config
from fac_lightning.files import DataError
from fac_lightning.generation.base import SamplingParams
from fac_lightning.requirements import EVAL_EXTRA, VLLM_EXTRA, Package, Source

log = logging.getLogger(__name__)

ENGINES = ("transformers", "vllm")
GLM_HUB = {"repo_id": "tatsu-lab/alpaca_eval", "filename": "df_gamed.csv", "repo_type": "dataset"}
"""Where alpaca_eval's length-controlled GLM reads its data (``alpaca_eval/metrics/glm_winrate.py``)."""


@dataclass
class AlpacaEvalConfig(BenchmarkConfig):
    reference: SourceConfig = MISSING
    """The instructions and reference outputs (rows ``{instruction, output, generator, dataset}``): AlpacaEval 2.0's
    805 answered by gpt4_1106_preview (mirror: alpaca_eval/gpt4_1106_preview.model_outputs.json.gz; hub:
    tatsu-lab/alpaca_eval, config alpaca_eval_gpt4_baseline, split eval)."""
    exclude_instructions_of: list[SourceConfig] = field(default_factory=list)
    """Sources whose instructions are never evaluated on (the first user turn of each of their conversations,
    compared after stripping whitespace): e.g. a training pool that holds AlpacaEval instructions. The count left out
    is reported (``excluded``)."""
    judge: Any = MISSING
    """``benchmark/judge=`` option (``fac_lightning.evaluation.judges``): alpaca_eval | logprob | reward_model |
    length."""
    length_controlled: bool = True
    """Compute LC (primary) with alpaca_eval's GLM; false: only WR (primary ``win_rate``), for machines without
    ``df_gamed.csv``."""
    glm_data: str = "alpaca_eval/df_gamed.csv"
    """A local copy of the GLM's ``df_gamed.csv`` (relative to ``paths.data_dir`` or absolute), read instead of the
    hub's (tatsu-lab/alpaca_eval, a dataset)."""
    engine: str = "transformers"
    """Generation engine: transformers (on the model in memory) | vllm (the model saved to a folder first; needs
    vllm installed)."""
    max_new_tokens: int = 2048
    """Tokens per answer (alpaca_eval's model configs: 2048 for most models)."""
    temperature: float = 0.0
    """0 = greedy (deterministic, so a rerun gives the same outputs; alpaca_eval's model configs mostly sample at
    0.7)."""
    top_p: float = 1.0
    """alpaca_eval's model configs: 1.0."""
    batch_size: int = 8
    """Prompts per transformers ``generate`` call (the transformers engine's default)."""
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.judge = judge_config(self.judge)
        at_least(self, 1, "max_new_tokens", "batch_size")
        at_least(self, 0, "temperature")
        within(self, "top_p", 0, 1, low_open=True)
        if self.engine not in ENGINES:
            raise ConfigError("engine", self.engine, f"must be one of {list(ENGINES)}")


REFERENCE_FIELDS = ("instruction", "output", "generator")


def glm_data_path(cfg: AlpacaEvalConfig, data_dir: str | Path) -> Path:
    """The GLM's ``df_gamed.csv``: the local copy at ``glm_data``, else the hub's (downloaded once, then cached)."""
    local = Path(data_dir) / cfg.glm_data
    if local.exists():
        return local
    from huggingface_hub import HfApi, hf_hub_download

    try:
        if os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0"):  # one short probe, not the download's retries
            HfApi().dataset_info(GLM_HUB["repo_id"], timeout=10)
        return Path(hf_hub_download(**GLM_HUB))
    except Exception as e:  # offline, or the hub refuses: one message naming both ways out
        raise DataError(f"benchmark={cfg.name}: the length-controlled win rate needs alpaca_eval's df_gamed.csv, not "
                        f"at {local} (benchmark.glm_data) and not reachable on the hub ({GLM_HUB['repo_id']}: "
                        f"{type(e).__name__}); copy it there, or set benchmark.length_controlled=false (primary: "
                        f"win_rate)") from e


def empty_answer_win_rate(judge, instructions: list[str], references: list[str]) -> float:
    """The trivial score: the win rate (alpaca_eval's, in %) this judge gives an empty answer to every instruction."""
    from alpaca_eval.metrics.winrate import get_winrate

    preferences = judge.preferences(instructions, references, [""] * len(instructions))
    return float(get_winrate(pd.DataFrame({"preference": preferences}))["win_rate"])


def win_rates(annotations: pd.DataFrame, glm_data: Path | None) -> dict[str, float]:
    """alpaca_eval's metrics of annotations (columns ``preference``, ``output_1``, ``output_2``, ``generator_1``,
    ``generator_2``; index = each instruction's position in AlpacaEval's 805, which the GLM's instruction difficulty
    is keyed by): ``get_winrate``, plus ``get_length_controlled_winrate`` with the GLM reading ``glm_data`` when
    given (its fit is not saved)."""
    from alpaca_eval.metrics import glm_winrate
    from alpaca_eval.metrics.winrate import get_winrate

    if glm_data is None:
        metrics = get_winrate(annotations)
    else:
        from unittest.mock import patch

        def local_copy(*, repo_id, filename, **kwargs):
            if (repo_id, filename) != (GLM_HUB["repo_id"], GLM_HUB["filename"]):
                raise FileNotFoundError(f"alpaca_eval asked for {repo_id}/{filename}; only df_gamed.csv is local")
            return str(glm_data)

        with patch.object(glm_winrate, "hf_hub_download", local_copy):
            metrics = glm_winrate.get_length_controlled_winrate(annotations.copy(), save_weights_dir=None)
    return {key: float(value) for key, value in metrics.items()}


@BENCHMARKS.register("alpacaeval", AlpacaEvalConfig)
class AlpacaEvalBenchmark(Benchmark):
    needs = "chat_model"

    def __init__(self, cfg: AlpacaEvalConfig, data_dir: str | Path):
        super().__init__(cfg, data_dir)
        # LC's data is looked up when the chain is planned, before any stage runs: a machine without it fails now
        self.glm_data = glm_data_path(cfg, data_dir) if cfg.length_controlled else None

    @property
    def primary(self) -> str:
        return "length_controlled_winrate" if self.cfg.length_controlled else "win_rate"

    def references(self) -> tuple[list[dict], list[int], str, int]:
        """(reference rows kept, their positions in the source, where they came from, how many were excluded)."""
        rows, origin = load_rows(self.cfg.reference, self.data_dir)
        for i, row in enumerate(rows, start=1):
            missing = [key for key in REFERENCE_FIELDS if not isinstance(row.get(key), str)]
            if missing:
                raise DataError(f"{origin}: row {i} has no text {missing} (AlpacaEval rows have instruction, output, "
                                f"generator and dataset)")
        excluded = {c[0]["content"].strip() for source in self.cfg.exclude_instructions_of
                    for c in load_conversations(source, self.data_dir) if c and c[0]["role"] == "user"}
        kept = [i for i, row in enumerate(rows) if row["instruction"].strip() not in excluded]
        if not kept:
            raise DataError(f"{origin}: every instruction is excluded by benchmark.exclude_instructions_of")
        positions = kept[: self.cfg.limit]
        return [rows[i] for i in positions], positions, origin, len(rows) - len(kept)

    def requirements(self, task):
        cfg = self.cfg
        return [Package("benchmark", cfg.name, "alpaca_eval", EVAL_EXTRA),
                *([Package("benchmark.engine", "vllm", "vllm", VLLM_EXTRA)] if cfg.engine == "vllm" else []),
                Source("benchmark.reference", cfg.reference, self.data_dir),
                *(Source(f"benchmark.exclude_instructions_of.{i}", source, self.data_dir)
                  for i, source in enumerate(cfg.exclude_instructions_of)),
                *cfg.judge.requirements(self.data_dir)]

    def check_task(self, task, data_dir):
        """No part of the task (anchor sides, seed, training pools) may hold an instruction evaluated here."""
        from fac_lightning.data.task_parts import task_parts

        evaluated = {row["instruction"].strip() for row in self.references()[0]}
        for part, examples in task_parts(task, data_dir).items():
            seen = sorted({e.conversation[0]["content"].strip() for e in examples} & evaluated)
            if seen:
                raise ValueError(f"benchmark={self.cfg.name} evaluates {len(seen)} instruction(s) that task "
                                 f"{task.name!r}'s part {part!r} reads (e.g. {seen[0][:60]!r}); leave them out with "
                                 f"benchmark.exclude_instructions_of (the part's sources)")

    def generator(self, model, folder: Path):
        if self.cfg.engine == "transformers":
            return model.generator(self.cfg.batch_size)
        from fac_lightning.generation.vllm_engine import VLLMConfig, VLLMGenerator, engine_args, gpu_memory

        model.model.save_pretrained(folder)
        model.tokenizer.save_pretrained(folder)  # beside the model in memory: vLLM gets a share of what is free
        cfg = VLLMConfig(engine="vllm", model=str(folder), seed=self.cfg.seed)
        return VLLMGenerator(f"vllm:{model.name}", **engine_args(cfg, None, gpu_memory()))

    def evaluate(self, model) -> dict:
        cfg = self.cfg
        if self.out_dir is None:
            raise ValueError(f"benchmark={cfg.name} writes model outputs and annotations: run it with run_benchmark")
        folder = Path(self.out_dir) / f"alpacaeval_{cfg.name}"
        glm_data = self.glm_data
        rows, positions, origin, excluded = self.references()
        judge = build_judge(cfg.judge)  # a judge that cannot load fails before the long generation
        instructions = [row["instruction"] for row in rows]
        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed)
        outputs = [o[0] for o in self.generator(model, folder / "model").generate(
            [[{"role": "user", "content": instruction}] for instruction in instructions], params)]
        model_outputs = [{"instruction": row["instruction"], "output": output, "generator": model.name,
                          "dataset": row.get("dataset", "")} for row, output in zip(rows, outputs, strict=True)]
        write_json_atomic(folder / "model_outputs.json", model_outputs)
        references = [row["output"] for row in rows]
        preferences = judge.preferences(instructions, references, outputs)
        annotations = pd.DataFrame(
            [{"instruction": row["instruction"], "output_1": row["output"], "generator_1": row["generator"],
              "output_2": output, "generator_2": model.name, "dataset": row.get("dataset", ""),
              "annotator": judge.label, "preference": preference}
             for row, output, preference in zip(rows, outputs, preferences, strict=True)], index=positions)
        write_json_atomic(folder / "annotations.json", annotations.to_dict(orient="records"))
        metrics = win_rates(annotations, glm_data)
        metrics["avg_length"] = float(np.mean([len(o) for o in outputs]))
        base_rate = 0.0 if judge.paid else empty_answer_win_rate(judge, instructions, references)
        log.info("alpacaeval (judge %s): %s", judge.label, metrics)
        return {"source": origin, "judge": judge.label, "examples": len(rows), "limit": cfg.limit,
                "excluded": excluded, "base_rate": base_rate, "generator": model.name, "outputs": str(folder),
                "glm_data": None if glm_data is None else str(glm_data), "metrics": metrics}
