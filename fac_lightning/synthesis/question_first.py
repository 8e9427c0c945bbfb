"""Rows from a question, for generators too small to write a whole row.

The paper's templates ask for a whole row as JSON: a preference pair's two ``Human:`` / ``Assistant:`` transcripts,
or an A/B item's question, choices and answers. The embedded SmolLM2-135M writes no whole pair that parses (0 of 28
samples, fac and self_instruct templates alike). With the answer prompts of the task's row format set, a strategy's
own template asks for the user question only (fac still targets a feature with it, self_instruct still shows
demonstrations of it, magpie still writes it from the bare template), and the generator then answers each question
with the row format's answer prompts (``RowFormat.answer_keys``) into a candidate (``RowFormat.candidate``):

- ``preference_pair`` (``answer_chosen``, ``answer_rejected``): twice, once as asked and once told to slip in one
  specific flaw (a hallucinated fact, a misreading, a subtle logic error), the paper's recipe for the rejected
  answer; the two transcripts go through the same pair checks (``PreferencePair.parse``) as a JSON pair would.
- ``ab_item`` (``answer_matching``, ``answer_not_matching``): two short answer choices, one that shows the task's
  behaviour and one that does not (the paper's A/B templates ask for the same two options); the choices are put
  under the question as ``(A)`` / ``(B)`` in an order drawn from the question's hash (so either letter matches the
  behaviour about half the time, as in CAA's sets), and the item goes through the A/B checks (``ABItem.parse``).
- ``instruction_response`` (``answer_response``): once, as a helpful assistant. For instruction following this is
  the paper's own recipe (one call writes the instruction, a second answers it), not a concession to the generator.
"""

from dataclasses import dataclass, replace

from fac_lightning.generation import Generator, SamplingParams
from fac_lightning.rows.base import RowFormat
from fac_lightning.rows.query import clean_query


@dataclass
class QuestionFirstPrompts:
    """The answer prompts; both of a row format's pair set = its question-first mode, both None = the template
    writes whole rows. Placeholder of each: {question}."""

    answer_chosen: str | None = None
    """Preference pairs: the user turn that asks for the good answer."""
    answer_rejected: str | None = None
    """Preference pairs: the user turn that asks for an answer with one specific flaw."""
    answer_matching: str | None = None
    """A/B items: asks for the short answer choice that shows the behaviour."""
    answer_not_matching: str | None = None
    """A/B items: asks for the short answer choice that does not."""
    answer_response: str | None = None
    """Instruction + response rows: the user turn that asks for the response (the paper's second call)."""
    answer_max_new_tokens: int | None = None
    """Tokens for each answer (an A/B choice needs a few dozen); None = the strategy's ``max_new_tokens``."""


def question_first(prompts, row_format: RowFormat) -> bool:
    keys = row_format.answer_keys
    return bool(keys) and all(getattr(prompts, key, None) is not None for key in keys)


def answer_questions(generator: Generator, raws: list[str], prompts, row_format: RowFormat,
                     params: SamplingParams) -> list[str]:
    """Each raw question (template artefacts stripped) with its answers (one per answer prompt of the format), as a
    JSON candidate of ``row_format``; an empty question stays an unparseable candidate."""
    questions = [clean_query(raw) for raw in raws]
    asked = list(dict.fromkeys(q for q in questions if q))
    keys = row_format.answer_keys
    chats = [[{"role": "user", "content": getattr(prompts, key).format(question=q)}] for key in keys for q in asked]
    if prompts.answer_max_new_tokens:
        params = replace(params, max_new_tokens=prompts.answer_max_new_tokens)
    outputs = [first for (first, *_) in generator.generate(chats, params)] if asked else []
    per_key = [outputs[i * len(asked) : (i + 1) * len(asked)] for i in range(len(keys))]
    answers = dict(zip(asked, zip(*per_key, strict=True), strict=True))
    return [row_format.candidate(q, *answers[q]) if q else "" for q in questions]
