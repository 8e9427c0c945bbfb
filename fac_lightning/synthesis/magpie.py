"""Magpie (Xu et al. 2024): give the aligned model only its chat template's pre-query prefix (optionally after a
task system prompt) and let it write the user query itself.

For instruction + response rows this is Magpie's native use: the template-only query is the instruction, and the
generator answers it (``prompts.answer_response``; Magpie's second stage, ``synthesis/question_first.py``).

For A/B items (steering), the query is the item's question and the generator then writes its two answer choices,
one showing the task's behaviour and one not (``synthesis/question_first.py``): Magpie has no A/B recipe; this keeps
its one idea, the template-only query, and answers it as the other strategies do.

For preference pairs, Magpie's DPO recipe follows: the query, then ``responses`` sampled answers to it, ranked;
the best is chosen, the worst rejected. Magpie ranks with a reward model (ArmoRM, 5 responses); none exists here,
so the generator ranks two answers as a pairwise judge (``prompts.judge``), greedy, and a verdict that names
neither answer discards the query. The pair then passes the same checks as every synthetic pair."""

import re
from dataclasses import dataclass, replace

from fac_lightning.chat import format_chat
from fac_lightning.generation import SamplingParams
from fac_lightning.rows.preference_pair import PreferencePair
from fac_lightning.rows.query import clean_query
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

_MARK = "\x00USER_MESSAGE\x00"
_VERDICT = re.compile(r"\b([AB])\b")


def pre_query_template(tokenizer, system: str | None) -> str:
    """The chat template rendered up to where a user message starts (Magpie's pre-query template)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _MARK}]
    return format_chat(tokenizer, messages).split(_MARK)[0]


@dataclass
class MagpieConfig(GenerativeConfig):
    top_p: float = 1.0
    """Magpie's Llama-3.1 script: T=0.8, top-p 1.0 for instructions."""
    query_max_new_tokens: int = 64
    """Pair tasks: tokens for the query (each answer gets the task's ``max_new_tokens``)."""


@dataclass
class MagpiePrompts(QuestionFirstPrompts):
    system: str | None = None
    """System prompt placed before the bare user prefix (None = the template's default)."""
    judge: str | None = None
    """Pair tasks: asks which of two answers is better; placeholders {question}, {answer_a}, {answer_b}; the reply
    is read for a standalone A or B."""


@STRATEGIES.register("magpie", MagpieConfig)
class MagpieStrategy(Strategy):
    Prompts = MagpiePrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def start(self) -> None:
        self.pre_query = pre_query_template(self.context.tokenizer, self.prompts.system)
        if self.pairs and not self.prompts.judge:
            raise ValueError(f"synthesis=magpie on pair task {self.task.name!r} needs prompts.judge "
                             f"(conf/prompts/{self.task.name}/magpie.yaml)")
        if not self.pairs and self.format.answer_keys and not self.question_first:
            keys = " and ".join(f"prompts.{k}" for k in self.format.answer_keys)
            raise ValueError(f"synthesis=magpie on task {self.task.name!r} ({self.task.row_format} rows) needs "
                             f"{keys} (conf/prompts/{self.task.name}/magpie.yaml)")

    @property
    def pairs(self) -> bool:
        """Preference-pair rows take Magpie's DPO recipe (two answers, ranked); the other formats its query."""
        return isinstance(self.format, PreferencePair)

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        texts = [self.pre_query] * self.cfg.prompts_per_call
        if self.pairs:
            return self.run_pair_unit(unit, writer, texts)
        raws = [raw for (raw,) in self.generator.complete(texts, self.params(unit))]
        for raw in self.candidates_from(raws, unit):  # each query answered into a row (A/B choices, a response)
            writer.offer(raw, self.provenance(unit, self.pre_query))

    def run_pair_unit(self, unit: int, writer: RowWriter, texts: list[str]) -> None:
        query_params = replace(self.params(unit), max_new_tokens=self.cfg.query_max_new_tokens)
        queries = [q for q in (clean_query(raw) for (raw,) in self.generator.complete(texts, query_params)) if q]
        writer.reject("empty", len(texts) - len(queries))
        answer_params = self.params(unit, 2, "second_call")
        answers = self.generator.generate([[{"role": "user", "content": q}] for q in queries], answer_params)
        judge_chats = [[{"role": "user", "content": self.prompts.judge.format(question=q, answer_a=a, answer_b=b)}]
                       for q, (a, b) in zip(queries, answers)]
        verdicts = self.generator.generate(judge_chats, SamplingParams(temperature=0.0, max_new_tokens=8))
        for query, (a, b), (verdict,) in zip(queries, answers, verdicts):
            letter = _VERDICT.search(verdict)
            if letter is None:
                writer.reject("judge_no_verdict")
                continue
            chosen, rejected = (a, b) if letter.group(1) == "A" else (b, a)
            writer.offer(self.format.candidate(query, chosen, rejected), self.provenance(unit, self.pre_query, judge_verdict=verdict))
