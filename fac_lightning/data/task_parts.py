"""A task's real data, split into disjoint named parts (``task.parts``: anchor sides, seed, training pools, ...).
Sources name row ranges of the same files, and real data sets repeat themselves (HH-RLHF's red-team transcripts
often open with the same request), so a conversation already in an earlier part, or earlier in the same part, is
dropped: no sample is both anchor and seed, or seed and training data. Each example keeps its source's label.
Parts are loaded in order up to the one asked for (at least through the required ones), so a part that only one
option reads (e.g. a mirror-only training pool) is never loaded by the others."""

import json
import logging

from fac_lightning.artifacts import config_hash
from fac_lightning.config import TaskConfig
from fac_lightning.data.conversations import load_examples
from fac_lightning.data.examples import Example

log = logging.getLogger(__name__)


_LOADED: dict[str, dict[str, list[Example]]] = {}
"""Parts already loaded in this process, by hash of (the task's parts, data dir)."""


def check_parts(task: TaskConfig) -> None:
    missing = [p for p in TaskConfig.REQUIRED_PARTS if p not in task.parts]
    if missing:
        raise ValueError(f"task {task.name!r}: task.parts lacks {missing} (required: {list(TaskConfig.REQUIRED_PARTS)};"
                         f" it has {list(task.parts)})")


def task_parts(task: TaskConfig, data_dir, upto: str | None = None) -> dict[str, list[Example]]:
    """The examples of every part up to ``upto`` (default: through the last required part), in ``task.parts`` order,
    each without the conversations seen before it."""
    check_parts(task)
    names = list(task.parts)
    if upto is not None and upto not in names:
        raise ValueError(f"task {task.name!r} has no part {upto!r} (task.parts: {names})")
    last = max(names.index(p) for p in [*TaskConfig.REQUIRED_PARTS, *([upto] if upto else [])])
    wanted = names[: last + 1]
    key = config_hash({p: task.parts[p] for p in wanted}, str(data_dir))
    if key not in _LOADED:
        _LOADED[key] = load_parts(task, wanted, data_dir)
    return _LOADED[key]


def load_parts(task: TaskConfig, names: list[str], data_dir) -> dict[str, list[Example]]:
    seen: set[str] = set()
    parts = {}
    for part in names:
        spec = task.parts[part]
        kept, repeated = [], 0
        for source in spec.sources:
            for example in load_examples(source, data_dir):
                key = json.dumps(example.conversation, sort_keys=True)  # a pair's: the chosen one
                if key in seen:
                    repeated += 1
                else:
                    seen.add(key)
                    kept.append(example)
        if repeated:
            log.info("task %s, %s: dropped %d conversations already in this or an earlier part", task.name, part,
                     repeated)
        parts[part] = kept
    return parts


def task_part(task: TaskConfig, part: str, data_dir) -> list[Example]:
    return task_parts(task, data_dir, upto=part)[part]


def parts_fingerprint(task: TaskConfig, data_dir, upto: str | None = None) -> str:
    """Hash of the content of the parts up to ``upto``, for artifact keys that depend on the task's data."""
    return config_hash(task_parts(task, data_dir, upto))
