"""Stage artifacts: folders named by a hash of exactly what determines them, with one lifecycle for every stage.

``ensure_artifact(final, build)``: if ``final`` exists it is complete and is reused; otherwise take ``<final>.lock``,
check again (another process may have finished it while we waited), let ``build`` write into ``<final>.partial/``
(which survives a kill: builders keep their checkpoints, scored chunks or finished units there and resume from them),
then rename ``.partial`` to ``final`` in one step. So a folder that exists is complete, two processes asking for the
same artifact (two sweeps, a sweep and a benchmark) never write one ``.partial`` at once, and nothing is overwritten.
"""

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
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


def partial_dir(final: str | Path) -> Path:
    final = Path(final)
    return final.with_name(final.name + ".partial")


def ensure_artifact(final: str | Path, build: Callable[[Path], None], what: str = "artifact") -> Path:
    """The artifact at ``final``, built by ``build(partial_folder)`` if it does not exist yet (see the module doc).
    ``build`` must leave in the folder only what the artifact holds (scratch files removed)."""
    final = Path(final)
    if final.exists():
        log.info("%s exists, reusing %s", what, final)
        return final
    with artifact_lock(final):
        if not final.exists():
            work = partial_dir(final)
            work.mkdir(parents=True, exist_ok=True)
            build(work)
            work.rename(final)
    return final
