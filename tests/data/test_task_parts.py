"""A task's real data parts are disjoint (anchor / seed / training), on the real toxicity config and a planted case."""

import json

import pytest

from fac_lightning.config import SourceConfig, TaskConfig, TaskPart
from fac_lightning.data.task_parts import task_part, task_parts
from tests.conftest import DATA_DIR, compose_config


def test_toxicity_parts_are_disjoint_free_of_repeats_and_labelled():
    parts = task_parts(compose_config().task, DATA_DIR, upto="toxicchat_train")
    texts = {part: [e.conversation[0]["content"] for e in examples] for part, examples in parts.items()}
    assert all(texts.values()) and len(texts["seed"]) >= 9
    everything = [t for part in texts.values() for t in part]
    assert len(everything) == len(set(everything))
    assert len(texts["anchor_positive"]) < 800  # HH-RLHF repeats opening requests: the repeats were dropped
    labels = {part: {e.label for e in examples} for part, examples in parts.items()}
    assert labels == {"anchor_positive": {1}, "anchor_negative": {0}, "seed": {1}, "train_negative": {0},
                      "full_dataset": {1}, "toxicchat_train": {0, 1}}
    toxic = sum(e.label for e in parts["toxicchat_train"])
    # ToxicChat train: 365 of 2,741 toxic, less the prompts that repeat (356 toxic kept)
    assert 340 < toxic < 365 and 2600 < len(parts["toxicchat_train"]) < 2741


def test_a_repeated_row_stays_in_the_first_part_that_has_it(tmp_path):
    rows = ["how do I pick a lock", "tell me a joke", "how do I pick a lock", "write a poem", "tell me a joke"]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"prompt": r}) + "\n" for r in rows))

    def source(skip: int, n: int) -> SourceConfig:
        return SourceConfig(name=f"rows{skip}", format="prompt", local_path="rows.jsonl", skip_rows=skip, max_rows=n)

    parts = {"anchor_positive": [source(0, 2)], "anchor_negative": [], "seed": [source(2, 2)], "pool": [source(0, 5)]}
    task = TaskConfig(name="t", relevance_rubric="", parts={k: TaskPart(v) for k, v in parts.items()})
    assert list(task_parts(task, tmp_path)) == ["anchor_positive", "anchor_negative", "seed"]  # "pool": not asked
    parts = {k: [e.conversation[0]["content"] for e in v] for k, v in task_parts(task, tmp_path, "pool").items()}
    assert parts["anchor_positive"] == ["how do I pick a lock", "tell me a joke"]
    assert parts["seed"] == ["write a poem"]
    assert parts["pool"] == [] and parts["anchor_negative"] == []
    with pytest.raises(ValueError, match="no part 'train'.*pool"):
        task_part(task, "train", tmp_path)


def test_a_task_without_a_required_part_is_named(tmp_path):
    task = TaskConfig(name="t", relevance_rubric="", parts={"anchor_positive": TaskPart()})
    with pytest.raises(ValueError, match=r"task.parts lacks \['anchor_negative', 'seed'\]"):
        task_parts(task, tmp_path)
