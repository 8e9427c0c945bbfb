"""``instruction_response`` rows (instruction following): TRL's conversational prompt-completion format
``{"prompt": [user message], "completion": [assistant message]}``, what ``sft_lora`` trains on (loss on the completion
only). A candidate is the JSON object ``{"instruction", "response"}``: the paper's two calls (write an instruction,
then answer it as a helpful assistant) assemble one (``synthesis/question_first.py``). It is checked with counted
reasons: a non-empty instruction and response, a response that answers rather than echoes the instruction, and no
leftover ``### Instruction`` / ``### Response`` template markers (the paper's answer prompt forbids them).
"""

import json
import re

from fac_lightning.rows import ROW_FORMATS
from fac_lightning.rows.base import RowFormat, json_object
from fac_lightning.rows.query import clean_query

_MARKERS = re.compile(r"^\s*#+\s*(?:instruction|response|input|output)\s*:?\s*$", re.IGNORECASE | re.MULTILINE)


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


def response_problem(instruction: str, response: str) -> str | None:
    """Why ``response`` is not an answer to ``instruction``, or None."""
    if not instruction.strip():
        return "empty_instruction"
    if not response.strip():
        return "empty_response"
    if normalized(response).startswith(normalized(instruction)):
        return "echoes_instruction"
    if _MARKERS.search(response):
        return "template_markers"
    return None


@ROW_FORMATS.register("instruction_response")
class InstructionResponse(RowFormat):
    answer_keys = ("answer_response",)

    def candidate(self, question: str, response: str) -> str:
        return json.dumps({"instruction": question, "response": response.strip()})

    def parse(self, raw):
        obj = json_object(raw)
        if obj is None:
            return None, "unparseable_json"
        if not all(isinstance(obj.get(k), str) for k in ("instruction", "response")):
            return None, "missing_field"
        instruction, response = clean_query(obj["instruction"]), obj["response"].strip()
        problem = response_problem(instruction, response)
        if problem:
            return None, problem
        return {"prompt": [{"role": "user", "content": instruction}],
                "completion": [{"role": "assistant", "content": response}]}, None

    def from_example(self, example):
        conversation = example.conversation
        if len(conversation) < 2 or conversation[-1]["role"] != "assistant":
            raise ValueError("instruction_response rows need a response: the source's rows must end with an "
                             "assistant turn (format instruction_output with a response_field, or messages)")
        problem = response_problem(conversation[-2]["content"], conversation[-1]["content"])
        if problem:
            raise ValueError(f"not an instruction and its response ({problem})")
        return {"prompt": conversation[:-1], "completion": conversation[-1:]}

    def query(self, row):
        return row["prompt"][-1]["content"]

    def answer(self, row):
        return row["completion"][-1]["content"]

    def scored(self, row):
        return row["prompt"] + row["completion"]

    def demo(self, row):
        return json.dumps({"instruction": self.query(row), "response": row["completion"][0]["content"]})

    def conversation_demo(self, conversation):
        return json.dumps({"instruction": conversation[0]["content"],
                           "response": conversation[1]["content"] if len(conversation) > 1 else ""})

    def invalid(self, row):
        for key in ("prompt", "completion"):
            if not isinstance(row.get(key), list) or not row[key]:
                return f"field {key!r} is missing or not a non-empty message list"
        if row["completion"][-1].get("role") != "assistant" or row["prompt"][-1].get("role") != "user":
            return "field 'prompt' must end with a user message and 'completion' hold the assistant's"
        problem = response_problem(row["prompt"][-1]["content"], row["completion"][-1]["content"])
        return None if problem is None else f"not an instruction and its response ({problem})"
