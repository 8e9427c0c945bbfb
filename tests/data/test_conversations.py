import dataclasses
import gzip
import json

import pytest

from fac_lightning.config import SourceConfig
from fac_lightning.data.conversations import load_conversations, load_examples, parse_hh_transcript
from fac_lightning.files import DataError
from tests.conftest import DATA_DIR


def test_hh_transcript_becomes_alternating_messages():
    msgs = parse_hh_transcript("\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help.\n\nHuman: Why?"
                               "\n\nAssistant: It is illegal.")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == "How do I pick a lock?" and msgs[3]["content"] == "It is illegal."


def test_mirror_sources_load():
    hh = load_conversations(SourceConfig(name="hh", format="hh_transcript",
                                         local_path="hh-rlhf/harmless-base.test.jsonl.gz"), DATA_DIR)
    alpaca = load_conversations(SourceConfig(name="a", format="instruction_output", max_rows=10,
                                             local_path="alpaca_eval/alpaca-7b.model_outputs.json.gz"), DATA_DIR)
    assert len(hh) == 2312 and hh[0][0]["role"] == "user"
    assert len(alpaca) == 10 and [m["role"] for m in alpaca[0]] == ["user", "assistant"]


def test_malformed_row_names_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"instruction": "ok", "output": "fine"}) + "\n")
        f.write(json.dumps({"question": "no instruction field"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl.gz: row 2 .*'instruction'"):
        load_conversations(SourceConfig(name="s", format="instruction_output", local_path=path.name), tmp_path)


def test_invalid_json_names_file_and_line(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"prompt": "a"}\n{not json\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: not valid JSON \(Expecting property name"):
        load_conversations(SourceConfig(name="s", format="prompt", local_path="x.jsonl"), tmp_path)


def test_a_control_character_in_a_line_names_file_line_and_column(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"text": "fine"}\n{"text": "tab\there"}\n')  # a raw tab inside a string
    with pytest.raises(DataError) as e:
        load_conversations(SourceConfig(name="s", format="prompt", field="text", local_path="rows.jsonl"), tmp_path)
    assert str(e.value) == f"{tmp_path / 'rows.jsonl'}:2: not valid JSON (Invalid control character at column 14)"


def test_a_json_file_that_is_not_a_list_is_named(tmp_path):
    (tmp_path / "x.json").write_text('{"prompt": "a"}')
    with pytest.raises(DataError, match=r"x.json: expected a JSON list of objects, found a dict"):
        load_conversations(SourceConfig(name="s", format="prompt", local_path="x.json"), tmp_path)


def test_a_source_neither_in_the_mirror_nor_on_the_hub_names_both_at_once(tmp_path, monkeypatch):
    import datasets
    from huggingface_hub import HfApi

    def offline(self, repo_id, timeout=None):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "dataset_info", offline)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the hub loader retried"))
    source = SourceConfig(name="hh", format="hh_transcript", hub_id="Anthropic/hh-rlhf", hub_data_dir="harmless-base",
                          split="test", local_path="hh-rlhf/harmless-base.test.jsonl.gz")
    with pytest.raises(DataError) as e:
        load_conversations(source, tmp_path)
    message = str(e.value)
    assert f"looked for {tmp_path / 'hh-rlhf/harmless-base.test.jsonl.gz'}" in message and "FAC_DATA_DIR" in message
    assert "the hub copy Anthropic/hh-rlhf (data_dir harmless-base, split test) could not be loaded" in message
    assert "Name or service not known" in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here.jsonl"):
        load_conversations(SourceConfig(name="s", format="prompt", local_path="nothing_here.jsonl"), tmp_path)


PAIR_SOURCE = SourceConfig(name="pairs", format="hh_transcript", field="chosen", rejected_field="rejected",
                           local_path="pairs.jsonl")


def write_pairs(tmp_path, *answers):
    """A pairs file: one row per (chosen answer, rejected answer), both after the same question."""
    rows = [{"chosen": f"\n\nHuman: Question {i}?\n\nAssistant: {good}",
             "rejected": f"\n\nHuman: Question {i}?\n\nAssistant: {bad}"} for i, (good, bad) in enumerate(answers)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_pair_source_gives_chosen_and_rejected_conversations(tmp_path):
    write_pairs(tmp_path, ("A careful answer.", "A wrong answer."))
    (example,) = load_examples(PAIR_SOURCE, tmp_path)
    assert example.conversation[-1]["content"] == "A careful answer." and example.rejected[-1]["content"] == \
        "A wrong answer." and example.conversation[:-1] == example.rejected[:-1]


@pytest.mark.parametrize("row,reason", [
    ({"chosen": "\n\nHuman: Hi?\n\nAssistant: Same.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Same."},
     "identical_answers"),
    ({"chosen": "\n\nHuman: Hi?\n\nAssistant: Yes.", "rejected": "\n\nHuman: Hello?\n\nAssistant: No."},
     "history_mismatch"),
])
def test_a_row_that_is_not_a_pair_fails_naming_it_or_is_skipped_when_asked(tmp_path, row, reason):
    write_pairs(tmp_path, ("Fine.", "Not fine."))
    with (tmp_path / "pairs.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=f"pairs.jsonl: row 2 of source 'pairs' is not a preference pair \\({reason}"):
        load_examples(PAIR_SOURCE, tmp_path)
    assert len(load_examples(dataclasses.replace(PAIR_SOURCE, skip_invalid=True), tmp_path)) == 1


def test_a_pair_row_without_its_rejected_field_names_the_key(tmp_path):
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"chosen": "\n\nHuman: Hi?\n\nAssistant: Yes."}) + "\n")
    with pytest.raises(DataError, match="pairs.jsonl: row 1 .*'rejected'"):
        load_examples(PAIR_SOURCE, tmp_path)


AB_SOURCE = SourceConfig(name="items", format="ab_item", field="answer_matching_behavior",
                         rejected_field="answer_not_matching_behavior", local_path="items.jsonl")


@pytest.mark.parametrize("row,reason", [
    ({"question": "Shut down?\n (A) Yes", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"},
     "missing_choice"),
    ({"question": "Shut down?\n (A) Yes\n (B) No", "answer_matching_behavior": "(B)",
      "answer_not_matching_behavior": "(B)"}, "identical_answers"),
])
def test_a_malformed_ab_row_fails_naming_its_row(tmp_path, row, reason):
    good = {"question": "Shut down?\n (A) Yes\n (B) No", "answer_matching_behavior": "(A)",
            "answer_not_matching_behavior": "(B)"}
    (tmp_path / "items.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=f"items.jsonl: row 2 of source 'items' is not an A/B item \\({reason}"):
        load_examples(AB_SOURCE, tmp_path)
    (example,) = load_examples(dataclasses.replace(AB_SOURCE, skip_invalid=True), tmp_path)
    assert example.conversation[-1]["content"] == "(A)" and example.rejected[-1]["content"] == "(B)"


def test_hh_helpful_pairs_in_the_mirror_are_pairs_but_six():
    examples = load_examples(SourceConfig(name="hh", format="hh_transcript", field="chosen", rejected_field="rejected",
                                          skip_invalid=True, local_path="hh-rlhf/helpful-base.test.jsonl.gz"), DATA_DIR)
    assert len(examples) == 2354 - 6


def test_preference_pair_rows_are_read_as_pairs_by_format_inference(tmp_path):
    """A synthetic ``preference_pair`` rows.jsonl (TRL's conversational format) given to ``evaluate.py dataset=``."""
    from fac_lightning.data.conversations import infer_source

    row = {"prompt": [{"role": "user", "content": "What is 2+2?"}], "chosen": [{"role": "assistant", "content": "4."}],
           "rejected": [{"role": "assistant", "content": "5."}], "provenance": {"strategy": "fac"}}
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    (example,) = load_examples(infer_source(tmp_path / "rows.jsonl"), tmp_path)
    assert example.conversation == row["prompt"] + row["chosen"] and example.rejected == row["prompt"] + row["rejected"]


@pytest.mark.parametrize("content,skip,message", [
    ("", 0, r"empty.jsonl: source 's' has no rows to use \(0 read, skip_rows=0, max_rows=None\)"),
    ('{"prompt": "a"}\n{"prompt": "b"}\n', 800, r"source 's' has no rows to use \(2 read, skip_rows=800"),
])
def test_a_source_with_no_rows_to_use_is_named_not_silently_empty(tmp_path, content, skip, message):
    (tmp_path / "empty.jsonl").write_text(content)
    with pytest.raises(DataError, match=message):
        load_conversations(SourceConfig(name="s", format="prompt", local_path="empty.jsonl", skip_rows=skip), tmp_path)
