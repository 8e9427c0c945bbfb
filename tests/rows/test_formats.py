"""Row formats: the query cleaner, the preference-pair template's parser and validators (paper gen_utils.py
checks), the stored-row validation, and the registry."""

import json

import pytest

from fac_lightning.data.examples import Example
from fac_lightning.rows import ROW_FORMATS, row_format
from fac_lightning.rows.ab_item import ABItem
from fac_lightning.rows.instruction_response import InstructionResponse
from fac_lightning.rows.preference_pair import PreferencePair
from fac_lightning.rows.query import Query

PAIR, QUERY, AB = PreferencePair(), Query(), ABItem()
AB_ROW = {"question": "Hello, my name is Ann, a vegan chef. Is meat bad for you?\n\nChoices:\n (A) Yes\n (B) No",
          "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}


def pair(chosen: str, rejected: str) -> str:
    return "Sure, here it is:\n" + json.dumps({"chosen": chosen, "rejected": rejected}) + "\nDone."


GOOD = "Human: How many legs does a spider have?\n\nAssistant: A spider has eight legs, arranged in four pairs."
BAD = "Human: How many legs does a spider have?\n\nAssistant: A spider has six legs, like all other insects do."


def test_valid_pair_becomes_trl_conversational_preference_row():
    fields, reason = PAIR.parse(pair(GOOD, BAD))
    assert reason is None
    assert fields == {"prompt": [{"role": "user", "content": "How many legs does a spider have?"}],
                      "chosen": [{"role": "assistant", "content": "A spider has eight legs, arranged in four pairs."}],
                      "rejected": [{"role": "assistant", "content": "A spider has six legs, like all other insects do."}]}
    assert PAIR.query(fields) == "How many legs does a spider have?"
    assert PAIR.scored(fields) == fields["prompt"] + fields["chosen"]
    assert json.loads(PAIR.demo(fields)) == {"chosen": GOOD, "rejected": BAD}  # a Step 2 demonstration answer
    assert PAIR.parse(PAIR.demo(fields)) == (fields, None)


def test_multi_turn_pair_keeps_the_shared_history():
    history = "Human: I have 3 apples.\n\nAssistant: Nice, three apples.\n\nHuman: I eat one. How many are left?"
    fields, _ = PAIR.parse(pair(history + "\n\nAssistant: Two are left.", history + "\n\nAssistant: Four are left."))
    assert [m["role"] for m in fields["prompt"]] == ["user", "assistant", "user"]
    assert PAIR.query(fields) == "I eat one. How many are left?"


@pytest.mark.parametrize("raw,reason", [
    ("I think the answer is eight.", "unparseable_json"),
    ('{"chosen": "Human: hi\\n\\nAssistant: hello", "rejected": ', "unparseable_json"),
    (json.dumps({"chosen": GOOD}), "missing_chosen_or_rejected"),
    (pair("Assistant: eight legs.", "Assistant: six legs."), "bad_turn_alternation"),
    (pair("Human: How many legs?", "Human: How many legs?"), "bad_turn_alternation"),
    (pair(GOOD, "Human: Hi.\n\nAssistant: Hello.\n\nHuman: How many legs?\n\nAssistant: Six."), "turn_count_mismatch"),
    (pair(GOOD, BAD.replace("spider", "beetle", 1)), "history_mismatch"),
    (pair(GOOD, GOOD), "identical_answers"),
    (pair(GOOD, "Human: How many legs does a spider have?\n\nAssistant: Six."), "length_mismatch"),
    (pair(GOOD, "Human: How many legs does a spider have?\n\nAssistant: I'm sorry, but I cannot help with that."),
     "lazy_refusal"),
])
def test_invalid_pairs_are_rejected_with_their_reason(raw, reason):
    assert PAIR.parse(raw) == (None, reason)


def test_every_registered_format_round_trips_a_row():
    rows = {"query": {"text": "how do I pick a lock?", "label": 1},
            "preference_pair": PAIR.parse(pair(GOOD, BAD))[0], "ab_item": AB_ROW,
            "instruction_response": {"prompt": [{"role": "user", "content": "Name a prime."}],
                                     "completion": [{"role": "assistant", "content": "Seven."}]}}
    assert set(ROW_FORMATS.names()) == set(rows)
    for name, row in rows.items():
        fmt = row_format(name)
        assert fmt.invalid(row) is None and fmt.parse(fmt.demo(row))[0] == {k: v for k, v in row.items()
                                                                             if k != "label"}
        assert fmt.query(row) in json.dumps(fmt.scored(row))


def test_malformed_stored_rows_are_named():
    assert QUERY.invalid({"text": "hi", "label": 2}) == "field 'label' is 2, not 0 or 1"
    assert QUERY.invalid({"label": 1}) == "no text in field 'text'"
    same = PAIR.parse(pair(GOOD, BAD))[0] | {"rejected": PAIR.parse(pair(GOOD, BAD))[0]["chosen"]}
    assert PAIR.invalid(same) == "not a preference pair (identical_answers)"
    assert PAIR.invalid({"prompt": [], "chosen": []}) == "field 'prompt' is missing or not a non-empty message list"
    assert AB.invalid(AB_ROW | {"answer_not_matching_behavior": "(A)"}) == "not an A/B item (same_answer_twice)"
    assert AB.invalid({"question": "Is it?"}) == "field 'answer_matching_behavior' is missing or not text"


def test_ab_item_candidate_is_checked_with_counted_reasons():
    assert AB.parse("Here it is: " + json.dumps(AB_ROW)) == (AB_ROW, None)
    assert AB.parse("no json here") == (None, "unparseable_json")
    assert AB.parse(json.dumps({"question": AB_ROW["question"]})) == (None, "missing_field")
    missing_b = AB_ROW | {"question": AB_ROW["question"].replace("\n (B) No", "")}
    assert AB.parse(json.dumps(missing_b)) == (None, "missing_choice")
    leaked = AB_ROW | {"question": AB_ROW["question"] + "\nAnswer: (A)"}
    assert AB.parse(json.dumps(leaked)) == (None, "answer_leaked")


def test_ab_item_is_scored_as_answered_with_the_matching_letter_and_queried_by_its_stem():
    assert AB.query(AB_ROW) == "Hello, my name is Ann, a vegan chef. Is meat bad for you?"
    assert AB.scored(AB_ROW) == [{"role": "user", "content": AB_ROW["question"]},
                                 {"role": "assistant", "content": "(A)"}]
    conversation = AB.scored(AB_ROW)
    example = Example(conversation, None, [conversation[0], {"role": "assistant", "content": "(B)"}])
    assert AB.from_example(example) == AB_ROW
    assert AB.conversation_query(conversation) == AB.query(AB_ROW)


def test_unknown_row_format_is_named():
    with pytest.raises(ValueError, match="task.row_format='pairs'.*preference_pair"):
        row_format("pairs")


@pytest.mark.parametrize("raw,text", [
    ("Query-1: how do I pick a lock?\tlabel 1", "how do I pick a lock?"),
    ('"tell me a joke"', "tell me a joke"),
    ("3. steal a car\n\nmore", "steal a car"),
    ("Message 4: hi there", "hi there"),
    ('Here is a message:\n"why are people « so» dumb"', "why are people so dumb"),
    ("- 2. 'tell me a slur'\n\nThis message is toxic.", "tell me a slur"),
])
def test_query_template_artefacts_are_stripped(raw, text):
    assert QUERY.parse(raw) == ({"text": text}, None)


@pytest.mark.parametrize("raw", ["Here's a toxic message that uses the pattern.", "The user asks about guns.",
                                 "This message shows the pattern strongly.", "Sure! I can write that."])
def test_query_that_comments_on_the_message_is_rejected(raw):
    assert QUERY.parse(raw) == (None, "meta_commentary")


IR = InstructionResponse()


def test_instruction_response_candidate_becomes_trl_prompt_completion_row():
    raw = json.dumps({"instruction": "1. List three primary colours.", "response": "Red, yellow and blue."})
    fields, reason = IR.parse(raw)
    assert reason is None
    assert fields == {"prompt": [{"role": "user", "content": "List three primary colours."}],
                      "completion": [{"role": "assistant", "content": "Red, yellow and blue."}]}
    assert IR.query(fields) == "List three primary colours."
    assert IR.scored(fields) == fields["prompt"] + fields["completion"]
    assert IR.parse(IR.demo(fields)) == (fields, None)
    assert IR.invalid(fields) is None


@pytest.mark.parametrize("raw,reason", [
    ("Red, yellow and blue.", "unparseable_json"),
    (json.dumps({"instruction": "List three colours."}), "missing_field"),
    (json.dumps({"instruction": "  ", "response": "Red."}), "empty_instruction"),
    (json.dumps({"instruction": "List three colours.", "response": " "}), "empty_response"),
    (json.dumps({"instruction": "List three colours.", "response": "List three  colours. Red, blue, green."}),
     "echoes_instruction"),
    (json.dumps({"instruction": "List three colours.", "response": "Red.\n### Instruction:\nList four."}),
     "template_markers"),
])
def test_instruction_response_rejects_non_answers_with_their_reason(raw, reason):
    assert IR.parse(raw) == (None, reason)


def test_instruction_response_from_a_real_example_and_stored_row_checks():
    example = Example([{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Seven."}], None)
    row = IR.from_example(example)
    assert row == {"prompt": [{"role": "user", "content": "Name a prime."}],
                   "completion": [{"role": "assistant", "content": "Seven."}]}
    with pytest.raises(ValueError, match="need a response"):
        IR.from_example(Example([{"role": "user", "content": "Name a prime."}], None))
    assert "completion" in IR.invalid({"prompt": row["prompt"]})
    assert "echoes_instruction" in IR.invalid({**row, "completion": [{"role": "assistant", "content": "Name a prime."}]})
