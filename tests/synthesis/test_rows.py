"""Row formats: the preference-pair template's parser and validators (paper gen_utils.py checks)."""

import json

import pytest

from fac_lightning.synthesis.rows import parse_candidate, row_answer, row_conversation, row_query


def pair(chosen: str, rejected: str) -> str:
    return "Sure, here it is:\n" + json.dumps({"chosen": chosen, "rejected": rejected}) + "\nDone."


GOOD = "Human: How many legs does a spider have?\n\nAssistant: A spider has eight legs, arranged in four pairs."
BAD = "Human: How many legs does a spider have?\n\nAssistant: A spider has six legs, like all other insects do."


def test_valid_pair_becomes_trl_conversational_preference_row():
    fields, reason = parse_candidate(pair(GOOD, BAD), "preference_pair")
    assert reason is None
    assert fields == {"prompt": [{"role": "user", "content": "How many legs does a spider have?"}],
                      "chosen": [{"role": "assistant", "content": "A spider has eight legs, arranged in four pairs."}],
                      "rejected": [{"role": "assistant", "content": "A spider has six legs, like all other insects do."}]}
    assert row_query(fields) == "How many legs does a spider have?"
    assert row_conversation(fields) == fields["prompt"] + fields["chosen"]
    assert json.loads(row_answer(fields)) == {"chosen": GOOD, "rejected": BAD}  # a Step 2 demonstration answer
    assert parse_candidate(row_answer(fields), "preference_pair") == (fields, None)


def test_multi_turn_pair_keeps_the_shared_history():
    history = "Human: I have 3 apples.\n\nAssistant: Nice, three apples.\n\nHuman: I eat one. How many are left?"
    fields, _ = parse_candidate(pair(history + "\n\nAssistant: Two are left.", history + "\n\nAssistant: Four are left."),
                                "preference_pair")
    assert [m["role"] for m in fields["prompt"]] == ["user", "assistant", "user"]
    assert row_query(fields) == "I eat one. How many are left?"


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
    assert parse_candidate(raw, "preference_pair") == (None, reason)


def test_unknown_row_format_is_named():
    with pytest.raises(ValueError, match="task.row_format='pairs'"):
        parse_candidate("x", "pairs")


@pytest.mark.parametrize("raw,text", [
    ("Query-1: how do I pick a lock?\tlabel 1", "how do I pick a lock?"),
    ('"tell me a joke"', "tell me a joke"),
    ("3. steal a car\n\nmore", "steal a car"),
    ("Message 4: hi there", "hi there"),
    ('Here is a message:\n"why are people « so» dumb"', "why are people so dumb"),
    ("- 2. 'tell me a slur'\n\nThis message is toxic.", "tell me a slur"),
])
def test_query_template_artefacts_are_stripped(raw, text):
    assert parse_candidate(raw, "query") == ({"text": text}, None)


@pytest.mark.parametrize("raw", ["Here's a toxic message that uses the pattern.", "The user asks about guns.",
                                 "This message shows the pattern strongly.", "Sure! I can write that."])
def test_query_that_comments_on_the_message_is_rejected(raw):
    assert parse_candidate(raw, "query") == (None, "meta_commentary")
