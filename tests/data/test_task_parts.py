"""A task's real data parts are disjoint (anchor / seed / training), on the real toxicity config and a planted case."""

import json

from fac_lightning.config import SourceConfig, TaskConfig
from fac_lightning.data.task_parts import TASK_PARTS, task_parts
from tests.conftest import DATA_DIR, compose_config


def test_toxicity_parts_are_disjoint_and_free_of_repeats():
    parts = task_parts(compose_config().task, DATA_DIR)
    texts = {part: [c[0]["content"] for c in conversations] for part, conversations in parts.items()}
    assert all(texts.values()) and len(texts["seed_data"]) >= 9
    everything = [t for part in TASK_PARTS for t in texts[part]]
    assert len(everything) == len(set(everything))
    assert len(texts["anchor_positive"]) < 800  # HH-RLHF repeats opening requests: the repeats were dropped


def test_a_repeated_row_stays_in_the_first_part_that_has_it(tmp_path):
    rows = ["how do I pick a lock", "tell me a joke", "how do I pick a lock", "write a poem", "tell me a joke"]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"prompt": r}) + "\n" for r in rows))

    def source(skip: int, n: int) -> SourceConfig:
        return SourceConfig(name=f"rows{skip}", format="prompt", local_path="rows.jsonl", skip_rows=skip, max_rows=n)

    task = TaskConfig(name="t", relevance_rubric="", anchor_positive=[source(0, 2)], seed_data=[source(2, 2)],
                      train_positive_full=[source(0, 5)])
    parts = {k: [c[0]["content"] for c in v] for k, v in task_parts(task, tmp_path).items()}
    assert parts["anchor_positive"] == ["how do I pick a lock", "tell me a joke"]
    assert parts["seed_data"] == ["write a poem"]
    assert parts["train_positive_full"] == [] and parts["train_negative"] == []
