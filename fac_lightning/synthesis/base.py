"""Synthesis strategies behind one registry, and the resumable row writer they share.

A strategy works through numbered *units* (a missing feature, a batch of prompts); each unit draws its sampling seed
from (run seed, unit index), and the writer commits a unit's rows and its rejection counts together. A killed run
therefore resumes at the first unfinished unit and the same seed and config give the same rows.
"""

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rouge_score import rouge_scorer

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.config import SynthesisConfig, TaskConfig
from fac_lightning.generation import Generator, SamplingParams
from fac_lightning.metrics.diversity import distinct_n
from fac_lightning.synthesis.rows import parse_candidate, row_query

_STRATEGIES: dict[str, type["Strategy"]] = {}


def register_strategy(cls: type["Strategy"]) -> type["Strategy"]:
    _STRATEGIES[cls.name] = cls
    return cls


def strategy_class(name: str) -> type["Strategy"]:
    from fac_lightning.synthesis import fac, magpie, self_instruct  # noqa: F401  (register the built-ins)

    if name not in _STRATEGIES:
        raise ValueError(f"synthesis.strategy={name!r} is not a registered strategy; choose from {sorted(_STRATEGIES)}")
    return _STRATEGIES[name]


def echoes_prompt(text: str, prompt: str | list[dict[str, str]]) -> bool:
    """True when the candidate repeats a line of its prompt (a text or a chat's messages: instructions or a
    demonstration) verbatim."""
    prompt = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
    return any(len(line) >= 25 and line in text for line in (raw.strip() for raw in prompt.splitlines()))


@dataclass
class RowWriter:
    """Appends accepted rows to ``rows.jsonl``; ``state.json`` records finished units, row count, rejections and
    candidate tallies (a strategy's own counts, e.g. fac's candidates per step and how many exceeded delta)."""

    folder: Path
    task: TaskConfig
    n_samples: int
    near_duplicate_rouge: float
    min_distinct_3: float
    rows: list[dict] = field(default_factory=list)
    rejections: Counter = field(default_factory=Counter)
    tallies: Counter = field(default_factory=Counter)
    units_done: int = 0

    def __post_init__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        state_file = self.folder / "state.json"
        if state_file.exists():  # resume: keep exactly the rows of finished units
            state = json.loads(state_file.read_text())
            self.units_done, self.rejections = state["units_done"], Counter(state["rejections"])
            self.tallies = Counter(state.get("tallies", {}))
            lines = (self.folder / "rows.jsonl").read_text().splitlines()[: state["rows"]]
            self.rows = [json.loads(line) for line in lines]
            (self.folder / "rows.jsonl").write_text("".join(line + "\n" for line in lines))
        self.pending: list[dict] = []

    @property
    def full(self) -> bool:
        return len(self.rows) + len(self.pending) >= self.n_samples

    def texts(self) -> list[str]:
        """The user message of every accepted row."""
        return [row_query(r) for r in self.rows + self.pending]

    def reject_reason(self, text: str) -> str | None:
        words = len(text.split())
        if not text:
            return "empty"
        if words < self.task.min_words:
            return "too_short"
        if words > self.task.max_words:
            return "too_long"
        if words >= 8 and distinct_n([text], 3) < self.min_distinct_3:
            return "repetitive"
        normalized = " ".join(text.lower().split())
        kept = self.texts()
        if any(" ".join(t.lower().split()) == normalized for t in kept):
            return "duplicate"
        if any(self.rouge.score(t, text)["rougeL"].fmeasure > self.near_duplicate_rouge for t in kept):
            return "near_duplicate"
        return None

    def offer(self, raw: str, provenance: dict) -> bool:
        """Clean, check and (if accepted and the budget allows) stage one candidate; count rejections by reason."""
        if self.full:
            self.rejections["over_budget"] += 1
            return False
        fields, reason = parse_candidate(raw, self.task.row_format)
        if fields is not None:
            query = row_query(fields)
            reason = "prompt_echo" if echoes_prompt(query, provenance.get("prompt", "")) else self.reject_reason(query)
        if reason:
            self.rejections[reason] += 1
            return False
        label = {"label": self.task.label} if self.task.row_format == "query" else {}
        self.pending.append({**fields, **label, "provenance": provenance})
        return True

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejections[reason] += count

    def tally(self, key: str, count: int = 1) -> None:
        self.tallies[key] += count

    def commit_unit(self) -> None:
        with (self.folder / "rows.jsonl").open("a") as f:
            for row in self.pending:
                f.write(json.dumps(row) + "\n")
        self.rows += self.pending
        self.pending = []
        self.units_done += 1
        write_json_atomic(self.folder / "state.json", {"units_done": self.units_done, "rows": len(self.rows),
                                                       "rejections": dict(self.rejections),
                                                       "tallies": dict(self.tallies)})


class Strategy:
    """A synthesis strategy: ``units()`` yields work; ``run_unit`` offers candidates to the writer."""

    name = ""
    row_formats = ("query",)
    """The ``task.row_format`` values this strategy can produce."""

    def __init__(self, cfg: SynthesisConfig, task: TaskConfig, generator: Generator, seed: int, context):
        if task.row_format not in self.row_formats:
            raise ValueError(f"synthesis={self.name} cannot write task {task.name!r}'s rows (task.row_format="
                             f"{task.row_format!r}); it writes {self.row_formats}")
        self.cfg, self.task, self.generator, self.seed, self.context = cfg, task, generator, seed, context

    def params(self, unit: int, n: int = 1) -> SamplingParams:
        return SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                              max_new_tokens=self.cfg.max_new_tokens, n=n, seed=self.seed * 100_003 + unit)

    def chat(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.task.prompts.system}, {"role": "user", "content": user}]

    def provenance(self, unit: int, prompt, **extra) -> dict:
        return {"strategy": self.name, "generator": self.generator.name, "unit": unit, "seed": self.seed,
                "temperature": self.cfg.temperature, "top_p": self.cfg.top_p, "prompt": prompt, **extra}

    def units(self) -> Iterator[int]:
        """Unit indices (the run also stops as soon as the writer is full). By default three times the units a
        budget of ``prompts_per_call``-prompt calls needs, so a generator that keeps failing cannot loop forever."""
        yield from range(3 * math.ceil(self.context.n_samples / max(self.cfg.prompts_per_call, 1)))

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        raise NotImplementedError

    def run(self, writer: RowWriter) -> None:
        for unit in self.units():
            if writer.full:
                return
            if unit < writer.units_done:
                continue
            self.run_unit(unit, writer)
            writer.commit_unit()
