"""``preference_pair`` rows (reward): TRL's conversational preference format ``{"prompt", "chosen", "rejected"}``
(message lists). A candidate is a JSON object ``{"chosen", "rejected"}`` holding two ``Human:`` / ``Assistant:``
transcripts, validated as the paper's generator code does: same number of turns, strict alternation starting with
Human and ending with Assistant, identical history up to the last assistant turn, two different final answers of
similar length, and a rejected answer that is not a lazy refusal."""

import json
import re

from fac_lightning.data.conversations import pair_problem, parse_hh_transcript
from fac_lightning.data.examples import Conversation
from fac_lightning.rows import ROW_FORMATS
from fac_lightning.rows.base import RowFormat, json_object

_REFUSAL = re.compile(r"^\s*(?:I'?m sorry|I am sorry|I can(?:'|no)t|I'm not able|As an AI)", re.IGNORECASE)
MAX_LENGTH_RATIO = 2.0
"""chosen / rejected final answers must be within this word-count ratio of each other ("similar length")."""


def transcript(conversation: Conversation) -> str:
    """A conversation as a ``Human:`` / ``Assistant:`` transcript (the pair template's own format)."""
    speakers = {"user": "Human", "assistant": "Assistant"}
    return "\n\n".join(f"{speakers[m['role']]}: {m['content']}" for m in conversation)


def pair_from_transcripts(chosen: Conversation, rejected: Conversation) -> tuple[dict | None, str | None]:
    """A row from two conversations that share their history, or the reason they do not make one."""
    problem = pair_problem(chosen, rejected)
    if problem:
        return None, problem
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}, None


@ROW_FORMATS.register("preference_pair")
class PreferencePair(RowFormat):
    answer_keys = ("answer_chosen", "answer_rejected")

    def candidate(self, question: str, good: str, bad: str) -> str:
        """The good and the flawed answer as the two transcripts of a pair."""
        user = {"role": "user", "content": question}
        return json.dumps({"chosen": transcript([user, {"role": "assistant", "content": good.strip()}]),
                           "rejected": transcript([user, {"role": "assistant", "content": bad.strip()}])})

    def parse(self, raw):
        obj = json_object(raw)
        if obj is None:
            return None, "unparseable_json"
        if not all(isinstance(obj.get(k), str) for k in ("chosen", "rejected")):
            return None, "missing_chosen_or_rejected"
        chosen, rejected = (parse_hh_transcript("\n\n" + obj[k].strip()) for k in ("chosen", "rejected"))
        row, reason = pair_from_transcripts(chosen, rejected)
        if row is None:
            return None, reason
        words = sorted((len(row["chosen"][0]["content"].split()), len(row["rejected"][0]["content"].split())))
        if words[1] > MAX_LENGTH_RATIO * max(words[0], 1):
            return None, "length_mismatch"
        if _REFUSAL.match(row["rejected"][0]["content"]):
            return None, "lazy_refusal"
        return row, None

    def from_example(self, example):
        if example.rejected is None:
            raise ValueError("preference_pair rows need a pair source: give the task part's source a "
                             "`rejected_field` (the column of the rejected conversation)")
        row, problem = pair_from_transcripts(example.conversation, example.rejected)
        if row is None:
            raise ValueError(f"not a preference pair ({problem})")
        return row

    def query(self, row):
        return row["prompt"][-1]["content"]

    def answer(self, row):
        return row["chosen"][-1]["content"]

    def scored(self, row):
        return row["prompt"] + row["chosen"]

    def demo(self, row):
        return json.dumps({"chosen": transcript(row["prompt"] + row["chosen"]),
                           "rejected": transcript(row["prompt"] + row["rejected"])})

    def conversation_demo(self, conversation):
        return transcript(conversation)

    def invalid(self, row):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(row.get(key), list) or not row[key]:
                return f"field {key!r} is missing or not a non-empty message list"
        _, reason = pair_from_transcripts(row["prompt"] + row["chosen"], row["prompt"] + row["rejected"])
        return None if reason is None else f"not a preference pair ({reason})"
