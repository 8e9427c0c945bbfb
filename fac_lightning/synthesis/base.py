"""The Strategy contract, the configs every strategy shares, and the resumable row writer.

A strategy works through numbered *units* (a missing feature pass, a batch of prompts, the real rows); each unit
draws its sampling seed from (run seed, unit index), and the writer commits a unit's rows and its rejection counts
together. A killed run therefore resumes at the first unfinished unit and the same seed and config give the same rows.
Each strategy module defines its Config (and Prompts, checked against ``conf/prompts/<task>/<strategy>.yaml``) and
registers with ``@STRATEGIES.register(name, Config)``.
"""

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf
from rouge_score import rouge_scorer

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.checks import at_least, require, within
from fac_lightning.config import TaskConfig, component_config
from fac_lightning.files import read_json
from fac_lightning.generation import Generator, SamplingParams
from fac_lightning.metrics.diversity import distinct_n
from fac_lightning.rows import row_format
from fac_lightning.rows.base import RowFormat
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.question_first import answer_questions, question_first


@dataclass
class SynthesisConfig:
    strategy: str = MISSING
    """Registered strategy (``fac_lightning.synthesis``)."""


@dataclass
class GenerativeConfig(SynthesisConfig):
    """What every strategy that samples a generator shares."""

    temperature: float = 0.8
    """Paper default 0.8 (App. I.2)."""
    top_p: float = 0.9
    """Paper default 0.9."""
    max_new_tokens: int | None = None
    """Tokens per generated candidate; None = the task's ``max_new_tokens`` (what one of its rows needs)."""
    near_duplicate_rouge: float = 0.7
    """Candidates with ROUGE-L F1 above this against a kept row are near-duplicates (Self-Instruct's filter)."""
    min_distinct_3: float = 0.6
    """Candidates of 8+ words whose word 3-grams are less than this share distinct are rejected as ``repetitive``
    (a small generator looping on a line; none of 959 real HH-RLHF requests is below 0.91)."""
    prompts_per_call: int = 8
    """Prompts sent to the generator together (self_instruct, magpie)."""

    def __post_init__(self):
        at_least(self, 0, "temperature", why=" (0 = greedy decoding)")
        within(self, "top_p", 0, 1, low_open=True)
        at_least(self, 1, "max_new_tokens", "prompts_per_call")
        within(self, "near_duplicate_rouge", 0, 1)
        within(self, "min_distinct_3", 0, 1)

    def one_sample_when_greedy(self, **counts: int) -> None:
        """Greedy decoding (temperature 0) gives one sample per prompt: refuse asking for more."""
        many = {k: v for k, v in counts.items() if v > 1}
        require(self.temperature > 0 or not many, "temperature", self.temperature,
                f"greedy decoding (temperature 0) gives one sample per prompt; set {' and '.join(many)} to 1, or "
                "a temperature > 0", many)


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
    format: RowFormat
    n_samples: int | None
    """The budget (None = no budget: real-data strategies keep every row)."""
    near_duplicate_rouge: float = 0.7
    min_distinct_3: float = 0.6
    rows: list[dict] = field(default_factory=list)
    rejections: Counter = field(default_factory=Counter)
    tallies: Counter = field(default_factory=Counter)
    units_done: int = 0

    def __post_init__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        state_file = self.folder / "state.json"
        if state_file.exists():  # resume: keep exactly the rows of finished units
            state = read_json(state_file)
            self.units_done, self.rejections = state["units_done"], Counter(state["rejections"])
            self.tallies = Counter(state.get("tallies", {}))
            lines = (self.folder / "rows.jsonl").read_text().splitlines()[: state["rows"]]
            self.rows = [json.loads(line) for line in lines]
            (self.folder / "rows.jsonl").write_text("".join(line + "\n" for line in lines))
        self.pending: list[dict] = []

    @property
    def full(self) -> bool:
        return self.n_samples is not None and len(self.rows) + len(self.pending) >= self.n_samples

    def texts(self) -> list[str]:
        """The user message of every accepted row."""
        return [self.format.query(r) for r in self.rows + self.pending]

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

    def check(self, raw: str, prompt: str | list[dict[str, str]] = "") -> tuple[dict | None, str | None]:
        """A candidate's cleaned fields and the reason it would be rejected (None: it passes the hygiene)."""
        fields, reason = self.format.parse(raw)
        if fields is not None:
            query = self.format.query(fields)
            reason = "prompt_echo" if echoes_prompt(query, prompt) else self.reject_reason(query)
        return fields, reason

    def offer(self, raw: str, provenance: dict) -> bool:
        """Clean, check and (if accepted and the budget allows) stage one candidate; count rejections by reason."""
        if self.full:
            self.rejections["over_budget"] += 1
            return False
        fields, reason = self.check(raw, provenance.get("prompt", ""))
        if reason:
            self.rejections[reason] += 1
            return False
        self.pending.append({**self.format.finish(fields, self.task.label), "provenance": provenance})
        return True

    def keep(self, row: dict) -> None:
        """Stage a real row as it is (real data is not candidate output: no hygiene, no budget)."""
        self.pending.append(row)

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


SEED_STREAMS = {"unit": 0, "second_call": 1, "answers": 2, "rip_responses": 3, "rip_judge": 4, "consistency": 5,
                "resample": 7}
"""A strategy's random streams within the run seed, 1,000,000 units apart: ``unit`` (a unit's prompts, demonstrations
and first generator call), ``second_call`` (a unit's second call: FAC's step 2, Magpie's and SAO's responses,
SynAlign's attribute summary), ``answers`` (question-first answers), CoT-Self-Instruct's ``rip_responses``,
``rip_judge`` and ``consistency`` samples, ``resample`` (SynAlign's weighted draw after the units)."""


class Strategy:
    """A synthesis strategy: ``units()`` yields work, ``run_unit`` offers candidates (or real rows) to the writer.
    Built from its config alone (``build_strategy``) so that a bad option fails before any model loads; ``run`` then
    gets the generator (None for real-data strategies) and the feature-space context."""

    name = ""
    Prompts: type | None = None
    """Dataclass of the templates this strategy reads from ``prompts`` (None: it reads none)."""
    row_formats: tuple[str, ...] = ("query",)
    """The ``task.row_format`` values this strategy can produce."""
    version = 1
    """Part of its row sets' keys: bump it when a change of the strategy's code changes its rows for the same config."""
    generative = True
    """False for strategies that read real rows (real data, selection): no generator is built."""
    budgeted = True
    """Whether the budget ``n_samples`` and the seed decide the rows (False for real data: every row of a part)."""
    background = True
    """Whether the task's background rows join this strategy's rows in a training set."""
    targets_missing = False
    """Whether it needs missing features F_miss to target (fac, coverage selection): a delta that leaves none stops
    the run before synthesis."""
    part = "seed"
    """The task part the strategy reads (the seed: F_miss and demonstrations; real-data strategies: their rows)."""

    def __init__(self, cfg: SynthesisConfig, prompts, task: TaskConfig, seed: int, n_samples: int):
        if task.row_format not in self.row_formats:
            raise ValueError(f"synthesis={self.name} cannot write task {task.name!r}'s rows (task.row_format="
                             f"{task.row_format!r}); it writes {list(self.row_formats)}")
        self.cfg, self.prompts, self.task, self.seed, self.n_samples = cfg, prompts, task, seed, n_samples
        self.format = row_format(task.row_format)
        self.generator: Generator | None = None
        self.context = None

    def writer(self, folder: Path) -> RowWriter:
        if not self.generative:
            return RowWriter(folder, self.task, self.format, None)
        return RowWriter(folder, self.task, self.format, self.n_samples, self.cfg.near_duplicate_rouge,
                         self.cfg.min_distinct_3)

    def unit_seed(self, unit: int, *streams: str) -> int:
        """The seed of a unit's random stream, named (``SEED_STREAMS``); chained names add up (FAC's step-2
        questions, answered: ``"second_call", "answers"``)."""
        return self.seed * 100_003 + unit + sum(SEED_STREAMS[s] for s in streams) * 1_000_000

    def params(self, unit: int, n: int = 1, *streams: str) -> SamplingParams:
        return SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                              max_new_tokens=self.cfg.max_new_tokens or self.task.max_new_tokens, n=n,
                              seed=self.unit_seed(unit, *streams))

    @property
    def question_first(self) -> bool:
        """Whether the prompts write questions that the generator then answers into rows
        (``synthesis/question_first.py``)."""
        return question_first(self.prompts, self.format)

    def candidates_from(self, raws: list[str], unit: int, *streams: str) -> list[str]:
        """Generator outputs (of ``unit``'s ``streams``) as row candidates: as written, or (question-first prompts)
        each question answered into a row of the task's format."""
        if not self.question_first:
            return raws
        return answer_questions(self.generator, raws, self.prompts, self.format,
                                self.params(unit, 1, *streams, "answers"))

    def demo(self, row: dict) -> str:
        """A row as this strategy's template asks for it (question-first prompts: the question alone)."""
        return self.format.query(row) if self.question_first else self.format.demo(row)

    def conversation_demo(self, conversation) -> str:
        """A real conversation (an anchor sample) as this strategy's template asks for a row."""
        if self.question_first:
            return self.format.conversation_query(conversation)
        return self.format.conversation_demo(conversation)

    def chat(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.prompts.system}, {"role": "user", "content": user}]

    def provenance(self, unit: int, prompt, **extra) -> dict:
        return {"strategy": self.name, "generator": self.generator.name, "unit": unit, "seed": self.seed,
                "temperature": self.cfg.temperature, "top_p": self.cfg.top_p, "prompt": prompt, **extra}

    def units(self) -> Iterator[int]:
        """Unit indices (the run also stops as soon as the writer is full). By default three times the units a
        budget of ``prompts_per_call``-prompt calls needs, so a generator that keeps failing cannot loop forever."""
        yield from range(3 * math.ceil(self.n_samples / max(self.cfg.prompts_per_call, 1)))

    def requirements(self, data_dir) -> list:
        """What it reads besides the task's parts (``fac_lightning.requirements``), checked before any model loads."""
        return []

    def check_data(self, data_dir) -> None:
        """Checks of the data the strategy reads that must fail before any model loads (selection: its pool)."""

    def fingerprint(self, data_dir) -> str | None:
        """What the row set's key must hold besides the config and the task part (selection: a pool file's content)."""
        return None

    def start(self) -> None:
        """Checks and set-up that need the context (e.g. fac's missing features); runs before the first unit."""

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        raise NotImplementedError

    def run(self, writer: RowWriter, generator: Generator | None, context) -> None:
        self.generator, self.context = generator, context
        self.start()
        for unit in self.units():
            if writer.full:
                return
            if unit < writer.units_done:
                continue
            self.run_unit(unit, writer)
            writer.commit_unit()


def strategy_prompts(cls: type[Strategy], prompts: DictConfig | None, where: str):
    """The ``prompts`` node as the strategy's Prompts object; a missing or unknown template fails naming the file."""
    if cls.Prompts is None:
        return None
    try:
        plain = OmegaConf.to_container(prompts, resolve=True) if prompts else {}  # ${task.prompt_fields.*} filled
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Prompts), plain))
    except Exception as e:
        raise ValueError(f"{where}: not the prompts synthesis={cls.name} needs ({e})") from e


def build_strategy(synthesis: DictConfig, prompts: DictConfig | None, task: TaskConfig, seed: int,
                   n_samples: int) -> Strategy:
    """The strategy of a ``synthesis=`` node with its ``prompts``, config and prompts checked; no model is loaded
    (``plan.RunPlan.strategy``)."""
    cls = STRATEGIES.get(synthesis.strategy).cls
    prompts = strategy_prompts(cls, prompts, f"conf/prompts/{task.name}/<synthesis>.yaml")
    return cls(component_config(synthesis, STRATEGIES), prompts, task, seed, n_samples)
