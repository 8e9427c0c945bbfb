"""Evol-Instruct (WizardLM, Xu et al. 2023, ``nlpxucan/WizardLM`` ``Evol_Instruct/{depth,breadth}.py``): prompts are
evolved round by round, each evolution one operator drawn uniformly from the released five (the Prompt Rewriter
preamble with one of four in-depth methods: add a constraint, deepen, concretize, more reasoning steps; or the
in-breadth Prompt Creator: a rarer prompt of the same domain), and the paper's eliminator drops failed evolutions.

Lineages: the task's seed rows are the first prompts (their user message: a toxic request, a pair's question, an
A/B item's question without its choices, an instruction); one unit is one round, in which every lineage's current
prompt is evolved once. An evolution that passes becomes a row and the lineage's next prompt; one that fails leaves
the parent in place for the next round (the paper puts failed items back). The lineages are rebuilt from the kept
rows' provenance, so a killed run resumes at the round it reached.

The eliminator, each rule a counted rejection reason:
- ``template_copied``: the evolved prompt contains the template's words ("given prompt", "rewritten prompt",
  "created prompt", "#The Given Prompt#" ...);
- ``no_information_gain``: the generator, asked the paper's Equal / Not Equal question (App. G) about parent and
  evolution, answers Equal (an answer that says neither is tallied as ``equality_unclear`` and passes);
- ``answer_sorry``: the row's answer contains "sorry" and has fewer than ``sorry_max_words`` words (80);
- ``answer_stop_words``: the row's answer is punctuation and stop words only (scikit-learn's English list).
Question-first formats (pairs, A/B items, instruction + response) are answered by the shared answer prompts
(``synthesis/question_first.py``) before the answer rules; so the evolved prompt is the question and the strategies
differ only in the questions they choose.

Deviations from the published recipe: the generator is the task's (the embedded 135M model on CPU, not ChatGPT) and
judges equality itself; ``rounds`` defaults to what the budget needs (up to 3 x ceil(n_samples / seeds)) instead of
the paper's 4; the evolved prompts of query rows (toxicity) have no answer, so the two answer rules do not apply to
them (an aligned generator's answer to a harmful request is a refusal whatever the evolution); the paper's fifth
in-depth operator, "complicate input", is not in the released script and not here either.
"""

import math
import random
import re
from dataclasses import dataclass

from omegaconf import MISSING
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from fac_lightning.checks import at_least, require
from fac_lightning.generation import SamplingParams
from fac_lightning.rows.query import clean_query
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

TEMPLATE_WORDS = re.compile(r"given prompt|rewritten prompt|created prompt|#\s*(?:the\s+)?given|#\s*rewritten|"
                            r"#\s*created", re.IGNORECASE)
_WORDS = re.compile(r"[A-Za-z']+")


@dataclass
class EvolInstructConfig(GenerativeConfig):
    rounds: int | None = None
    """Evolution rounds; None = until the budget is full, at most 3 x ceil(n_samples / seed rows) (the paper: 4)."""
    judge_equality: bool = True
    """Eliminator rule 1: ask the generator whether an evolution equals its parent (WizardLM App. G)."""
    sorry_max_words: int = 80
    """Eliminator rule 2: an answer containing "sorry" with fewer words than this is a failed evolution."""

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "rounds", "sorry_max_words")


@dataclass
class EvolInstructPrompts(QuestionFirstPrompts):
    system: str | None = None
    """System prompt of the evolution calls (None: none, as the released script sends the operator prompt alone)."""
    in_depth: str = MISSING
    """The Prompt Rewriter preamble; placeholders {method} (one of ``methods``) and {prompt}."""
    methods: list[str] = MISSING
    """The in-depth methods, one drawn per evolution with the in-breadth operator (released: four)."""
    in_breadth: str = MISSING
    """The Prompt Creator; placeholder {prompt}."""
    equality: str = MISSING
    """The Equal / Not Equal question; placeholders {first}, {second}."""


def only_stop_words(text: str) -> bool:
    return all(w.lower() in ENGLISH_STOP_WORDS for w in _WORDS.findall(text))


@STRATEGIES.register("evol_instruct", EvolInstructConfig)
class EvolInstructStrategy(Strategy):
    Prompts = EvolInstructPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def start(self) -> None:
        require(bool(self.context.seed_texts), "task.parts.seed", None,
                "synthesis=evol_instruct evolves the task's seed rows: the seed part is empty")
        require(len(self.prompts.methods) > 0, "prompts.methods", [], "give at least one in-depth method")

    def units(self):
        per_round = len(self.context.seed_texts)
        yield from range(self.cfg.rounds or 3 * math.ceil(self.n_samples / per_round))

    def lineages(self, writer: RowWriter) -> list[str]:
        """Each lineage's current prompt: its seed, or its latest kept evolution."""
        heads = list(self.context.seed_texts)
        for row in writer.rows:
            heads[row["provenance"]["lineage"]] = row["provenance"]["evolved"]
        return heads

    def operator(self, rng: random.Random, prompt: str) -> tuple[str, str]:
        """(operator name, the operator's prompt), drawn uniformly from the in-depth methods and in-breadth."""
        choice = rng.randrange(len(self.prompts.methods) + 1)
        if choice == len(self.prompts.methods):
            return "in_breadth", self.prompts.in_breadth.format(prompt=prompt)
        return f"in_depth_{choice}", self.prompts.in_depth.format(method=self.prompts.methods[choice], prompt=prompt)

    def chat(self, user: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.prompts.system}] if self.prompts.system else []
        return [*system, {"role": "user", "content": user}]

    def equal(self, pairs: list[tuple[str, str]], writer: RowWriter) -> list[bool]:
        """The generator's Equal / Not Equal verdict on each (parent, evolution); unclear verdicts count as not equal."""
        if not self.cfg.judge_equality or not pairs:
            return [False] * len(pairs)
        chats = [[{"role": "user", "content": self.prompts.equality.format(first=a, second=b)}] for a, b in pairs]
        verdicts = [v.lower() for (v,) in self.generator.generate(chats, SamplingParams(max_new_tokens=8))]
        for verdict in verdicts:
            if "equal" not in verdict:
                writer.tally("equality_unclear")
        return ["equal" in v and "not equal" not in v for v in verdicts]

    def answer_problem(self, raw: str) -> str | None:
        fields, _ = self.format.parse(raw)
        answer = self.format.answer(fields) if fields else None
        if answer is None:
            return None
        if "sorry" in answer.lower() and len(answer.split()) < self.cfg.sorry_max_words:
            return "answer_sorry"
        return "answer_stop_words" if only_stop_words(answer) else None

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        rng = random.Random(self.unit_seed(unit))
        heads = self.lineages(writer)
        drawn = [self.operator(rng, head) for head in heads]
        outputs = self.generator.generate([self.chat(prompt) for _, prompt in drawn], self.params(unit))
        writer.tally("evolutions", len(heads))
        alive = []
        for lineage, ((name, prompt), (raw,)) in enumerate(zip(drawn, outputs, strict=True)):
            writer.tally(f"operator/{name}")
            if TEMPLATE_WORDS.search(raw):
                writer.reject("template_copied")
            else:
                alive.append((lineage, name, prompt, clean_query(raw)))
        same = self.equal([(heads[lineage], evolved) for lineage, _, _, evolved in alive], writer)
        if any(same):
            writer.reject("no_information_gain", sum(same))
        alive = [item for item, equal in zip(alive, same, strict=True) if not equal]
        candidates = self.candidates_from([evolved for *_, evolved in alive], unit)
        for (lineage, name, prompt, evolved), raw in zip(alive, candidates, strict=True):
            problem = self.answer_problem(raw) if raw else None
            if problem:
                writer.reject(problem)
                continue
            # the evolution may keep its parent verbatim: the prompt is recorded (and echo-checked) without it
            template = prompt.replace(heads[lineage], "{prompt}")
            writer.offer(raw, self.provenance(unit, template, lineage=lineage, operator=name, parent=heads[lineage],
                                              evolved=evolved, round=unit))
