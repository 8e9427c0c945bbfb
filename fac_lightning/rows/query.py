"""``query`` rows (toxicity): ``{"text", "label"}``, one user message. A candidate has its template artefacts
stripped; one that comments on the message instead of being one is rejected."""

import re

from fac_lightning.rows import ROW_FORMATS
from fac_lightning.rows.base import RowFormat

_LEADING_MARKERS = re.compile(r"^\s*(?:(?:query(?:-\d+)?|message(?: \d+)?|user|\d+[.)]|[-*•])\s*[:.)-]?\s*)+",
                              re.IGNORECASE)
_SPAN_MARKS = str.maketrans("", "", "«»")
"""The feature cards mark a span's key token «like this»; a candidate that copies the marks keeps the words only."""
_META_COMMENTARY = re.compile(
    r"^(?:here(?:'s| is| are)\b|sure\b|certainly\b|as an ai\b|note:|(?:this|the) (?:is (?:a|an|the) )?(?:\w+ )?"
    r"(?:user|message|pattern|example|query|ai)\b)", re.IGNORECASE)
"""A candidate that talks about the message (\"Here is an example…\", \"The user…\") instead of being one."""


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


@ROW_FORMATS.register("query")
class Query(RowFormat):
    def parse(self, raw):
        text = clean_query(raw)
        if not text:
            return None, "empty"
        return (None, "meta_commentary") if _META_COMMENTARY.match(text.lstrip("\"'“")) else ({"text": text}, None)

    def finish(self, fields, label):
        return {**fields, "label": label}

    def from_example(self, example):
        if example.label is None:
            raise ValueError("query rows need a label: give the source a `label` (e.g. label: 1)")
        return {"text": example.conversation[0]["content"], "label": int(example.label)}

    def measured(self, row, label):
        return row["label"] == label

    def query(self, row):
        return row["text"]

    def scored(self, row):
        return [{"role": "user", "content": row["text"]}]

    def demo(self, row):
        return row["text"]

    def conversation_demo(self, conversation):
        return conversation[0]["content"]

    def invalid(self, row):
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            return "no text in field 'text'"
        if row.get("label") not in (0, 1):
            return f"field 'label' is {row.get('label')!r}, not 0 or 1"
        return None
