"""The paper's relevance chain (App. K): explain a feature from its top spans, verify the explanation against the
spans, then rate its relevance to the task rubric. Verdicts are Yes / Probably / Maybe / No; a feature is relevant
when both the verification and the relevance verdict are at least Maybe. A malformed answer is logged and counted
as No. Every prompt and answer is kept for audit; verdicts are cached per feature in a JSONL file."""

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fac_lightning.checks import at_least
from fac_lightning.features.table import Span
from fac_lightning.files import read_rows
from fac_lightning.generation import Generator, SamplingParams
from fac_lightning.relevance import RELEVANCE, RelevanceConfig, RelevanceMethod

log = logging.getLogger(__name__)

VERDICTS = ("yes", "probably", "maybe", "no")
RELEVANT_VERDICTS = {"yes", "probably", "maybe"}
_BRACKETED = re.compile(r"\[\[\s*(yes|probably|maybe|no)\s*\]\]", re.IGNORECASE)
_DECISION = re.compile(r"(?:final decision|answer|decision)\s*[:\-]?\s*\**\s*(yes|probably|maybe|no)\b", re.IGNORECASE)

EXPLAIN_SYSTEM = (
    "You study one neuron of a language model. It fires on the token marked «like this» at the end of each text "
    "span below; weight the end of each span most. In one or two sentences, name the single concept it detects. "
    "Do not list the examples. If you see no common pattern, answer exactly: Cannot Tell.")
VERIFY_SYSTEM = (
    "You are a careful linguistic expert. Decide whether the explanation fits the text spans (the marked token "
    "is where the neuron fires). Reply with one short reason, then 'Final Decision: [[Yes]]', '[[Probably]]', "
    "'[[Maybe]]' or '[[No]]'.")
RELEVANCE_SYSTEM = (
    "You decide whether a neuron of a language model is relevant to a task. Reply with one short reason, then "
    "'Final Decision: [[Yes]]', '[[Probably]]', '[[Maybe]]' or '[[No]]'.")


def parse_verdict(answer: str) -> str | None:
    """The verdict in a judge answer, or None if there is none to find."""
    match = _BRACKETED.search(answer) or _DECISION.search(answer)
    if match:
        return match.group(1).lower()
    words = re.findall(r"[a-z]+", answer.lower())
    return words[0] if words and words[0] in VERDICTS else None


def spans_block(spans: list[Span]) -> str:
    return "\n".join(f"{i + 1}. {s.text.strip()}" for i, s in enumerate(spans))


@dataclass
class LLMJudgeConfig(RelevanceConfig):
    max_features: int | None = 50
    """Judge only the most frequent anchor features (cost cap; None = all)."""
    spans_shown: int = 10
    """Top spans shown to the judge (paper: 10 for toxicity, 4 for the other tasks)."""
    max_new_tokens: int = 200

    def __post_init__(self):
        at_least(self, 1, "max_features", "spans_shown", "max_new_tokens")


@RELEVANCE.register("llm_judge", LLMJudgeConfig)
class LLMJudgeRelevance(RelevanceMethod):
    """The paper's chain: explain each frequent anchor feature from its spans, verify, then judge it against the
    task rubric; verdicts are cached per feature so an interrupted judge resumes."""

    uses_generator = True

    def select(self, anchor, labels, delta, rubric, make_generator, cache_file):
        judge = LLMJudge(make_generator(), rubric, self.cfg.spans_shown, self.cfg.max_new_tokens, cache_file)
        counts = anchor.active_counts(delta)
        candidates = np.flatnonzero(anchor.active(delta))
        candidates = candidates[np.argsort(-counts[candidates], kind="stable")][: self.cfg.max_features]
        records = {int(f): judge.judge(int(f), anchor.spans.get(int(f), [])) for f in candidates}
        relevant = np.zeros(anchor.num_features, dtype=bool)
        relevant[[f for f, r in records.items() if r["relevant"]]] = True
        return relevant, records


class LLMJudge:
    def __init__(self, generator: Generator, rubric: str, spans_shown: int = 10, max_new_tokens: int = 200,
                 cache_file: str | Path | None = None):
        self.generator, self.rubric, self.spans_shown = generator, rubric, spans_shown
        self.params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
        self.cache_file = Path(cache_file) if cache_file else None
        self.key = hashlib.sha256(f"{generator.name}|{rubric}|{spans_shown}|{max_new_tokens}".encode()).hexdigest()[:12]
        self.cache = self._read_cache()

    def _read_cache(self) -> dict[int, dict]:
        if not self.cache_file or not self.cache_file.exists():
            return {}
        return {r["feature"]: r for r in read_rows(self.cache_file) if r["judge"] == self.key}

    def _ask(self, system: str, user: str) -> str:
        return self.generator.generate([[{"role": "system", "content": system}, {"role": "user", "content": user}]],
                                       self.params)[0][0]

    def verdict(self, answer: str, feature: int, step: str) -> str:
        verdict = parse_verdict(answer)
        if verdict is None:
            log.warning("feature %d: malformed %s answer counted as No: %r", feature, step, answer[:200])
            return "no"
        return verdict

    def judge(self, feature: int, spans: list[Span]) -> dict:
        """Explain, verify and rate one feature (or return its cached record)."""
        if feature in self.cache:
            return self.cache[feature]
        shown = spans_block(spans[: self.spans_shown])
        explain_prompt = f"Text spans:\n{shown}\n\nWhat concept does the neuron detect?"
        explanation = self._ask(EXPLAIN_SYSTEM, explain_prompt).strip()
        verify_prompt = f"Explanation: {explanation}\n\nText spans:\n{shown}\n\nDoes the explanation fit the spans?"
        verify_answer = self._ask(VERIFY_SYSTEM, verify_prompt)
        relevance_prompt = (f"Task rubric:\n{self.rubric}\n\nNeuron explanation: {explanation}\n\nText spans:\n"
                            f"{shown}\n\nIs this neuron relevant to the task?")
        relevance_answer = self._ask(RELEVANCE_SYSTEM, relevance_prompt)
        record = {
            "feature": feature, "judge": self.key, "generator": self.generator.name, "explanation": explanation,
            "verification": self.verdict(verify_answer, feature, "verify"),
            "relevance": self.verdict(relevance_answer, feature, "relevance"),
            "malformed": [step for step, a in (("verify", verify_answer), ("relevance", relevance_answer))
                          if parse_verdict(a) is None],
            "calls": [{"system": s, "user": u, "answer": a} for s, u, a in (
                (EXPLAIN_SYSTEM, explain_prompt, explanation), (VERIFY_SYSTEM, verify_prompt, verify_answer),
                (RELEVANCE_SYSTEM, relevance_prompt, relevance_answer))],
        }
        record["relevant"] = (record["verification"] in RELEVANT_VERDICTS
                              and record["relevance"] in RELEVANT_VERDICTS)
        self.cache[feature] = record
        if self.cache_file:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_file.open("a") as f:
                f.write(json.dumps(record) + "\n")
        return record
