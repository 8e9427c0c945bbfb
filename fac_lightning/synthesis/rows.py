"""Row formats of synthetic data sets (``task.row_format``): how a generated candidate becomes a task row, and a row
the conversation that the SAE scores.

- ``query`` (toxicity): ``{"text", "label"}``; the candidate is one user message, template artefacts stripped;
  a candidate that comments on the message instead of being one is rejected.
- ``preference_pair`` (reward): TRL's conversational preference format ``{"prompt", "chosen", "rejected"}`` (message
  lists). The candidate is a JSON object ``{"chosen", "rejected"}`` holding two ``Human:`` / ``Assistant:``
  transcripts, validated as the paper's generator code does: same number of turns, strict alternation starting with
  Human and ending with Assistant, identical history up to the last assistant turn, two different final answers of
  similar length, and a rejected answer that is not a lazy refusal.
"""

import json
import re

from fac_lightning.data.conversations import Conversation, parse_hh_transcript

ROW_FORMATS = ("query", "preference_pair")
_LEADING_MARKERS = re.compile(r"^\s*(?:(?:query(?:-\d+)?|message(?: \d+)?|user|\d+[.)]|[-*•])\s*[:.)-]?\s*)+",
                              re.IGNORECASE)
_SPAN_MARKS = str.maketrans("", "", "«»")
"""The feature cards mark a span's key token «like this»; a candidate that copies the marks keeps the words only."""
_META_COMMENTARY = re.compile(
    r"^(?:here(?:'s| is| are)\b|sure\b|certainly\b|as an ai\b|note:|(?:this|the) (?:is (?:a|an|the) )?(?:\w+ )?"
    r"(?:user|message|pattern|example|query|ai)\b)", re.IGNORECASE)
"""A candidate that talks about the message (\"Here is an example…\", \"The user…\") instead of being one."""
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_REFUSAL = re.compile(r"^\s*(?:I'?m sorry|I am sorry|I can(?:'|no)t|I'm not able|As an AI)", re.IGNORECASE)
MAX_LENGTH_RATIO = 2.0
"""chosen / rejected final answers must be within this word-count ratio of each other ("similar length")."""


def clean_query(text: str) -> str:
    """Strip template artefacts: an introducing line ending in ':', list numbers and bullets, 'Query-1:' style
    markers, span marks, wrapping quotes, trailing label tabs."""
    lines = re.sub(" {2,}", " ", text.strip().translate(_SPAN_MARKS)).split("\n")
    while len(lines) > 1 and (not lines[0].strip() or lines[0].rstrip().endswith(":")):
        lines = lines[1:]
    text = "\n".join(lines).strip().split("\n\n")[0].split("\t")[0].strip()
    text = _LEADING_MARKERS.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def parse_preference_pair(raw: str) -> tuple[dict | None, str | None]:
    """(row fields, None) for a valid pair, else (None, rejection reason)."""
    match = _JSON_OBJECT.search(raw)
    try:
        obj = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        return None, "unparseable_json"
    if not all(isinstance(obj.get(k), str) for k in ("chosen", "rejected")):
        return None, "missing_chosen_or_rejected"
    chosen, rejected = (parse_hh_transcript("\n\n" + obj[k].strip()) for k in ("chosen", "rejected"))
    for turns in (chosen, rejected):
        roles = [m["role"] for m in turns]
        if not roles or roles[-1] != "assistant" or roles != ["user", "assistant"] * (len(roles) // 2):
            return None, "bad_turn_alternation"
    if len(chosen) != len(rejected):
        return None, "turn_count_mismatch"
    if chosen[:-1] != rejected[:-1]:
        return None, "history_mismatch"
    good, bad = chosen[-1]["content"], rejected[-1]["content"]
    if " ".join(good.split()) == " ".join(bad.split()):
        return None, "identical_answers"
    words = sorted((len(good.split()), len(bad.split())))
    if words[1] > MAX_LENGTH_RATIO * max(words[0], 1):
        return None, "length_mismatch"
    if _REFUSAL.match(bad):
        return None, "lazy_refusal"
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}, None


def parse_candidate(raw: str, row_format: str) -> tuple[dict | None, str | None]:
    """Row fields of one generated candidate (without label / provenance), or the reason it is rejected."""
    if row_format == "query":
        text = clean_query(raw)
        if not text:
            return None, "empty"
        return (None, "meta_commentary") if _META_COMMENTARY.match(text.lstrip("\"'“")) else ({"text": text}, None)
    if row_format == "preference_pair":
        return parse_preference_pair(raw)
    raise ValueError(f"task.row_format={row_format!r}: choose from {ROW_FORMATS}")


def row_query(row: dict) -> str:
    """The user message a row is about (length limits, duplicate checks, demonstrations): its last user turn."""
    return row["text"] if "text" in row else row["prompt"][-1]["content"]


def row_conversation(row: dict) -> Conversation:
    """What the SAE scores: the user message, or the prompt followed by the chosen answer."""
    return [{"role": "user", "content": row["text"]}] if "text" in row else row["prompt"] + row["chosen"]


def transcript(conversation: Conversation) -> str:
    """A conversation as a ``Human:`` / ``Assistant:`` transcript (the pair template's own format)."""
    speakers = {"user": "Human", "assistant": "Assistant"}
    return "\n\n".join(f"{speakers[m['role']]}: {m['content']}" for m in conversation)


def row_answer(row: dict) -> str:
    """A row written the way the task's template asks the generator to write it (a demonstration answer): the user
    message, or the pair as JSON of two transcripts."""
    if "text" in row:
        return row["text"]
    return json.dumps({"chosen": transcript(row["prompt"] + row["chosen"]),
                       "rejected": transcript(row["prompt"] + row["rejected"])})
