"""``ab_item`` rows (behaviour steering): CAA's A/B format ``{"question", "answer_matching_behavior",
"answer_not_matching_behavior"}``, the question holding its ``(A) …`` / ``(B) …`` choice lines and each answer a
letter in parentheses (``fac_lightning/data/ab_items.py``). A candidate is that JSON object (the paper's template
writes one; question-first prompts assemble one, ``synthesis/ab_answers.py``), checked with counted reasons: both
choices present, two different answers with valid letters, no answer stated in the question.

The SAE scores the question answered with the behaviour-matching letter (as CAA reads its vector); what length
limits and duplicate checks look at is the question's stem, without its choices.
"""

import json
import zlib

from fac_lightning.data.ab_items import ab_problem, choices, letter, stem
from fac_lightning.rows import ROW_FORMATS
from fac_lightning.rows.base import RowFormat, json_object
from fac_lightning.rows.query import clean_query

FIELDS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")


def choice_text(answer: str) -> str:
    """A generated answer as a choice line's text: its first line, without a leading letter or quotes."""
    line = clean_query(answer).split("\n")[0].strip()
    for prefix in ("(A)", "(B)", "A)", "B)", "A.", "B."):
        line = line.removeprefix(prefix).strip()
    return line.strip("\"'“”").strip()


@ROW_FORMATS.register("ab_item")
class ABItem(RowFormat):
    answer_keys = ("answer_matching", "answer_not_matching")

    def candidate(self, question: str, matching: str, not_matching: str) -> str:
        """The two answers as the item's choices, put under the question as (A) / (B) in an order drawn from the
        question's hash (so either letter matches the behaviour about half the time, as in CAA's sets)."""
        texts = choice_text(matching), choice_text(not_matching)
        matching_first = zlib.crc32(question.encode()) % 2 == 0
        a, b = texts if matching_first else texts[::-1]
        letters = ("(A)", "(B)") if matching_first else ("(B)", "(A)")
        return json.dumps({"question": f"{question}\n\nChoices:\n (A) {a}\n (B) {b}",
                           "answer_matching_behavior": letters[0], "answer_not_matching_behavior": letters[1]})

    def parse(self, raw):
        obj = json_object(raw)
        if obj is None:
            return None, "unparseable_json"
        if not all(isinstance(obj.get(k), str) for k in FIELDS):
            return None, "missing_field"
        row = {k: obj[k].strip() for k in FIELDS}
        problem = ab_problem(*(row[k] for k in FIELDS))
        return (None, problem) if problem else (row, None)

    def from_example(self, example):
        if example.rejected is None:
            raise ValueError("ab_item rows need an A/B source: format ab_item with `field: answer_matching_behavior` "
                             "and `rejected_field: answer_not_matching_behavior`")
        question, matching = (m["content"] for m in example.conversation)
        return {"question": question, "answer_matching_behavior": matching,
                "answer_not_matching_behavior": example.rejected[-1]["content"]}

    def query(self, row):
        return stem(row["question"])

    def conversation_query(self, conversation):
        return stem(super().conversation_query(conversation))

    def answer(self, row):
        """The text of the behaviour-matching choice."""
        return choices(row["question"]).get(letter(row["answer_matching_behavior"]), "")

    def scored(self, row):
        return [{"role": "user", "content": row["question"]},
                {"role": "assistant", "content": row["answer_matching_behavior"]}]

    def demo(self, row):
        return json.dumps({k: row[k] for k in FIELDS})

    def conversation_demo(self, conversation):
        question, matching = (m["content"] for m in conversation[:2])
        return json.dumps({"question": question, "answer_matching_behavior": matching})

    def invalid(self, row):
        for key in FIELDS:
            if not isinstance(row.get(key), str) or not row[key].strip():
                return f"field {key!r} is missing or not text"
        problem = ab_problem(*(row[k] for k in FIELDS))
        return None if problem is None else f"not an A/B item ({problem})"
