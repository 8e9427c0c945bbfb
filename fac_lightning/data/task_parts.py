"""A task's real data, split into disjoint named parts (``task.parts``: anchor sides, seed, training pools, ...).
Sources name row ranges of the same files, and real data sets repeat themselves (HH-RLHF's red-team transcripts
often open with the same request), so a conversation already in an earlier part, or earlier in the same part, is
dropped: no sample is both anchor and seed, or seed and training data. Each example keeps its source's label."""

import json
import logging
from typing import NamedTuple

from fac_lightning.artifacts import config_hash
from fac_lightning.config import TaskConfig
from fac_lightning.data.conversations import Conversation, load_conversations

log = logging.getLogger(__name__)


class Example(NamedTuple):
    conversation: Conversation
    label: int | None


_LOADED: dict[str, dict[str, list[Example]]] = {}
"""Parts already loaded in this process, by hash of (the task's parts, data dir)."""


def check_parts(task: TaskConfig) -> None:
    missing = [p for p in TaskConfig.REQUIRED_PARTS if p not in task.parts]
    if missing:
        raise ValueError(f"task {task.name!r}: task.parts lacks {missing} (required: {list(TaskConfig.REQUIRED_PARTS)};"
                         f" it has {list(task.parts)})")


def task_parts(task: TaskConfig, data_dir) -> dict[str, list[Example]]:
    """Every part's examples, in ``task.parts`` order, each without the conversations seen before it."""
    check_parts(task)
    key = config_hash(task.parts, str(data_dir))
    if key not in _LOADED:
        _LOADED[key] = load_parts(task, data_dir)
    return _LOADED[key]


def load_parts(task: TaskConfig, data_dir) -> dict[str, list[Example]]:
    seen: set[str] = set()
    parts = {}
    for part, spec in task.parts.items():
        kept, repeated = [], 0
        for source in spec.sources:
            for conversation in load_conversations(source, data_dir):
                key = json.dumps(conversation, sort_keys=True)
                if key in seen:
                    repeated += 1
                else:
                    seen.add(key)
                    kept.append(Example(conversation, source.label))
        if repeated:
            log.info("task %s, %s: dropped %d conversations already in this or an earlier part", task.name, part,
                     repeated)
        parts[part] = kept
    return parts


def task_part(task: TaskConfig, part: str, data_dir) -> list[Example]:
    parts = task_parts(task, data_dir)
    if part not in parts:
        raise ValueError(f"task {task.name!r} has no part {part!r} (task.parts: {list(parts)})")
    return parts[part]


def parts_fingerprint(task: TaskConfig, data_dir) -> str:
    """Hash of the content of every part, for artifact keys that depend on the task's data."""
    return config_hash(task_parts(task, data_dir))
