"""Stage artifacts: folders named by a hash of exactly the config that determines them, written atomically.

A stage writes into ``<final>.tmp<pid>`` and renames it to ``<final>`` when done, so a folder that exists is
complete; an existing artifact is reused, never overwritten. Stages that build an artifact hold ``artifact_lock`` on
it, so two processes asking for the same artifact (two sweeps, a sweep and a benchmark) never write one ``.partial``
folder at once: the second waits, then reuses the finished artifact.
"""

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def config_hash(*parts) -> str:
    """Stable 12-hex-digit hash of configs / plain values (order of dict keys does not matter)."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_json_atomic(path: str | Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it becomes ``final`` (which must not exist yet)."""
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"artifact {final} already exists; refusing to overwrite it")
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(final)


@contextmanager
def artifact_lock(final: str | Path) -> Iterator[None]:
    """Hold an exclusive lock (``<final>.lock``, released when the process dies) while building ``final``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.with_name(final.name + ".lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is building %s; waiting for it", final)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
