"""Preference pairs from a question, for generators too small to write a whole pair.

The paper's pair template asks for one JSON object holding two ``Human:`` / ``Assistant:`` transcripts; the embedded
SmolLM2-135M writes none that parses (0 of 28 samples, fac and self_instruct templates alike). With
``prompts.answer_chosen`` and ``prompts.answer_rejected`` set, a strategy's own template asks for the user question
only (fac still targets a feature with it, self_instruct still shows demonstrations of it), and the generator then
answers each question twice: once as asked, once told to slip in one specific flaw (a hallucinated fact, a misreading,
a subtle logic error), the paper's recipe for the rejected answer. The two transcripts go through the same pair checks
(``PreferencePair.parse``) as a JSON pair would.
"""

import json
from dataclasses import dataclass

from fac_lightning.generation import Generator, SamplingParams
from fac_lightning.rows.preference_pair import transcript
from fac_lightning.rows.query import clean_query


@dataclass
class PairAnswerPrompts:
    answer_chosen: str | None = None
    """Pair tasks, question-first: the user turn that asks for the good answer. Placeholder: {question}."""
    answer_rejected: str | None = None
    """Pair tasks, question-first: the user turn that asks for an answer with one specific flaw. Placeholder:
    {question}. Both set = the template writes questions and these write the answers; both None = the template
    writes whole pairs."""


def question_first(prompts) -> bool:
    return getattr(prompts, "answer_rejected", None) is not None and getattr(prompts, "answer_chosen", None) is not None


def answer_pairs(generator: Generator, raws: list[str], prompts: PairAnswerPrompts, params: SamplingParams) -> list[str]:
    """Each raw question (template artefacts stripped) with its two answers as a pair's JSON candidate; an empty
    question stays an unparseable candidate."""
    questions = [clean_query(raw) for raw in raws]
    asked = [q for q in questions if q]
    chats = [[{"role": "user", "content": template.format(question=q)}]
             for template in (prompts.answer_chosen, prompts.answer_rejected) for q in asked]
    outputs = generator.generate(chats, params) if asked else []
    answers = dict(zip(asked, zip(outputs[: len(asked)], outputs[len(asked) :], strict=True), strict=False))
    candidates = []
    for question in questions:
        if not question:
            candidates.append("")
            continue
        (good,), (bad,) = answers[question]
        user = {"role": "user", "content": question}
        candidates.append(json.dumps({
            "chosen": transcript([user, {"role": "assistant", "content": good.strip()}]),
            "rejected": transcript([user, {"role": "assistant", "content": bad.strip()}])}))
    return candidates
