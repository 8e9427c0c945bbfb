"""The RowFormat contract: everything that depends on what a task's row looks like.

A row is a JSON object (one line of ``rows.jsonl``). Its format knows how a generated candidate becomes a row
(``parse``, ``finish``), how a real example does (``from_example``), what the SAE scores (``scored``), which user
message length and duplicate checks look at (``query``), how the row is shown back to a generator as an earlier
answer (``demo``), and what makes a stored row malformed (``invalid``).
"""

import json
import re

from fac_lightning.data.examples import Conversation, Example

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def json_object(raw: str) -> dict | None:
    """The JSON object a generator wrote somewhere in its reply (from the first ``{`` to the last ``}``), or None."""
    match = _JSON_OBJECT.search(raw)
    try:
        obj = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


class RowFormat:
    name = ""
    answer_keys: tuple[str, ...] = ()
    """The answer prompts (``QuestionFirstPrompts`` fields) that turn a question into one of its rows, in the order
    ``candidate`` takes the answers; none: a question is not answered into a row (a query is the row)."""

    def candidate(self, question: str, *answers: str) -> str:
        """A question and its answers (one per ``answer_keys``) as a raw candidate, the JSON its ``parse`` reads."""
        raise NotImplementedError(f"row format {self.name!r} has no question-first candidates")

    def parse(self, raw: str) -> tuple[dict | None, str | None]:
        """Row fields of one generated candidate (no label, no provenance), or None and the rejection reason."""
        raise NotImplementedError

    def finish(self, fields: dict, label: int) -> dict:
        """A parsed candidate as a row (labelled formats add the task's label)."""
        return fields

    def from_example(self, example: Example) -> dict:
        """A real example (a task part's conversation or pair, with its source's label) as a row."""
        raise NotImplementedError

    def measured(self, row: dict, label: int) -> bool:
        """Whether the row counts in FAC and the text metrics: the task-positive side (``label``) of labelled
        formats, every row otherwise."""
        return True

    def query(self, row: dict) -> str:
        """The user message the row is about (length limits, duplicate checks)."""
        raise NotImplementedError

    def conversation_query(self, conversation: Conversation) -> str:
        """The user message a real conversation (an anchor sample) is about, as ``query`` reads a row's."""
        return [m["content"] for m in conversation if m["role"] == "user"][-1]

    def answer(self, row: dict) -> str | None:
        """The assistant text that answers the row's question (None for formats without one: a query)."""
        return None

    def scored(self, row: dict) -> Conversation:
        """The conversation the SAE scores for this row."""
        raise NotImplementedError

    def demo(self, row: dict) -> str:
        """The row written the way the task's template asks the generator to write it (a demonstration answer)."""
        raise NotImplementedError

    def conversation_demo(self, conversation: Conversation) -> str:
        """One real conversation (an anchor sample, which is not a whole row) shown to the generator as an answer."""
        raise NotImplementedError

    def invalid(self, row: dict) -> str | None:
        """Why a stored row is malformed (names the field), or None."""
        raise NotImplementedError
