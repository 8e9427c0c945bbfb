"""A task's real data, split into disjoint parts: anchor (both sides), seed, training negatives and the full set of
real positives. Sources name row ranges of the same files, and real data sets repeat themselves (HH-RLHF's red-team
transcripts often open with the same request), so a conversation already in an earlier part, or earlier in the same
part, is dropped: no sample is both anchor and seed, or seed and training data."""

import json
import logging

from fac_lightning.artifacts import config_hash
from fac_lightning.config import TaskConfig
from fac_lightning.data.conversations import Conversation, load_conversations

log = logging.getLogger(__name__)
TASK_PARTS = ("anchor_positive", "anchor_negative", "seed_data", "train_negative", "train_positive_full")


_LOADED: dict[str, dict[str, list[Conversation]]] = {}
"""Parts already loaded in this process, by hash of (the task's part sources, data dir)."""


def task_parts(task: TaskConfig, data_dir) -> dict[str, list[Conversation]]:
    """Every part's conversations, in ``TASK_PARTS`` order, each without the ones seen before it."""
    key = config_hash({part: getattr(task, part) for part in TASK_PARTS}, str(data_dir))
    if key not in _LOADED:
        _LOADED[key] = load_parts(task, data_dir)
    return _LOADED[key]


def load_parts(task: TaskConfig, data_dir) -> dict[str, list[Conversation]]:
    seen: set[str] = set()
    parts = {}
    for part in TASK_PARTS:
        kept, repeated = [], 0
        for source in getattr(task, part):
            for conversation in load_conversations(source, data_dir):
                key = json.dumps(conversation, sort_keys=True)
                if key in seen:
                    repeated += 1
                else:
                    seen.add(key)
                    kept.append(conversation)
        if repeated:
            log.info("task %s, %s: dropped %d conversations already in this or an earlier part", task.name, part,
                     repeated)
        parts[part] = kept
    return parts


def task_part(task: TaskConfig, part: str, data_dir) -> list[Conversation]:
    return task_parts(task, data_dir)[part]


def parts_fingerprint(task: TaskConfig, data_dir) -> str:
    """Hash of the content of every part, for artifact keys that depend on the task's data."""
    return config_hash(task_parts(task, data_dir))
