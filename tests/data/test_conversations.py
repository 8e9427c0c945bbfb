import gzip
import json

import pytest

from fac_lightning.config import SourceConfig
from fac_lightning.data.conversations import DataError, load_conversations, parse_hh_transcript
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


def test_invalid_json_names_row(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"prompt": "a"}\n{not json\n')
    with pytest.raises(DataError, match=r"x.jsonl: row 2"):
        load_conversations(SourceConfig(name="s", format="prompt", local_path="x.jsonl"), tmp_path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here.jsonl"):
        load_conversations(SourceConfig(name="s", format="prompt", local_path="nothing_here.jsonl"), tmp_path)
