"""Stage artifacts: folders named by a hash of exactly what determines them, with one lifecycle for every stage.

``ensure_artifact(final, build)``: if ``final`` exists it is complete and is reused; otherwise take ``<final>.lock``,
check again (another process may have finished it while we waited), let ``build`` write into ``<final>.partial/``
(which survives a kill: builders keep their checkpoints, scored chunks or finished units there and resume from them),
then rename ``.partial`` to ``final`` in one step. So a folder that exists is complete, two processes asking for the
same artifact (two sweeps, a sweep and a benchmark) never write one ``.partial`` at once, and nothing is overwritten.

Right before the rename, ``checksums.json`` records the size and SHA-256 of every file of the artifact. An existing
artifact is verified against it before it is reused, and each kind's loader verifies the folder it reads (``load_sae``,
``FeatureTable.load``, the synthesis stage's ``read_rows``, ``load_model``), so a truncated or altered file is never
used silently. What happens then is the caller's choice, ``on_corrupt``: ``rebuild`` (the bad folder is moved aside to
``<artifact>.corrupt`` and built again: for cheap, deterministic artifacts) or ``refuse`` (an ``ArtifactError`` names
the file and says how to rebuild: for expensive or irreproducible ones). A folder made before checksums existed has
no ``checksums.json``: it is accepted as it is, and its checksums are recorded then (with a log line), so that later
damage is caught. Verified folders are remembered per process by their files' sizes and modification times, so a
folder is hashed once, not at every load.
"""

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fac_lightning.files import DataError, read_json

log = logging.getLogger(__name__)


def config_hash(*parts) -> str:
    """Stable 12-hex-digit hash of configs / plain values (order of dict keys does not matter)."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


NOT_IN_KEY = {"in_key": False}
"""Dataclass field metadata (``field(default=..., metadata=NOT_IN_KEY)``) of a config field that does not by itself
determine an artifact: a throughput knob (a batch size, a timeout, a concurrency), or a value whose effect reaches
keys through what it produces (a task's data parts are keyed by their content). ``key_fields`` leaves it out."""


def key_fields(value) -> Any:
    """``value`` (a config dataclass, a DictConfig, or plain values) as plain values, without the dataclass fields
    marked ``NOT_IN_KEY``, at any depth."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: key_fields(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("in_key", True)}
    if isinstance(value, DictConfig | ListConfig):
        return key_fields(OmegaConf.to_container(value, resolve=True))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: key_fields(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [key_fields(v) for v in value]
    return value


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


CHECKSUMS = "checksums.json"
REFUSE, REBUILD = "refuse", "rebuild"


class ArtifactError(RuntimeError):
    """A finished artifact whose files do not match its checksums; the message names the folder and the files."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def _fingerprint(folder: Path) -> tuple:
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file())


_VERIFIED: dict[Path, tuple] = {}
"""Folders verified in this process, with the fingerprint (files, sizes, mtimes) they had then."""


def write_checksums(folder: str | Path) -> None:
    """Record the size and SHA-256 of every file of ``folder`` in its ``checksums.json``."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in _files(folder)}
    write_json_atomic(folder / CHECKSUMS, {"files": files})
    _VERIFIED[folder.resolve()] = _fingerprint(folder)


def artifact_problems(folder: str | Path) -> list[str]:
    """What is wrong with a finished artifact's files (empty: nothing). A folder without ``checksums.json`` (made
    before checksums existed) is accepted and gets one now."""
    folder = Path(folder)
    key = folder.resolve()
    if _VERIFIED.get(key) == _fingerprint(folder):
        return []
    manifest = folder / CHECKSUMS
    if not manifest.exists():
        log.info("%s has no %s (made before artifacts carried checksums): accepting it as it is and recording its "
                 "checksums now", folder, CHECKSUMS)
        try:
            write_checksums(folder)
        except OSError as e:  # a read-only folder is still used, unchecked
            log.warning("could not write %s: %s", manifest, e)
        return []
    try:
        expected = read_json(manifest)["files"]
    except (DataError, KeyError, TypeError) as e:
        return [f"{CHECKSUMS}: unreadable ({e})"]
    problems = []
    for name, want in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != want["size"]:
            problems.append(f"{name}: {path.stat().st_size} bytes, {want['size']} expected (truncated or altered)")
        elif file_sha256(path) != want["sha256"]:
            problems.append(f"{name}: content differs from its checksum (altered)")
    if not problems:
        _VERIFIED[key] = _fingerprint(folder)
    return problems


def corrupt_message(folder: Path, what: str, problems: list[str], hint: str = "") -> str:
    return (f"{what} {folder} is corrupted and was not used: {'; '.join(problems)}. "
            f"{hint or 'Delete the folder to build it again'} (rm -r {folder}).")


def verify_artifact(folder: str | Path, what: str = "artifact", hint: str = "") -> Path:
    """``folder`` if its files match its checksums, else an ``ArtifactError`` naming them (loaders call this)."""
    folder = Path(folder)
    problems = artifact_problems(folder)
    if problems:
        raise ArtifactError(corrupt_message(folder, what, problems, hint))
    return folder


def process_rank() -> int:
    """This process's rank in a multi-process fit: Lightning's DDP launcher re-runs the entry point for ranks 1..N-1
    with ``LOCAL_RANK`` set; torchrun sets ``RANK``. (Ranks started by SLURM itself, across nodes, are not
    supported: ``trainer=ddp`` is one machine's GPUs.)"""
    for name in ("RANK", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def ensure_artifact(final: str | Path, build: Callable[[Path], None], what: str = "artifact",
                    on_corrupt: str = REFUSE, hint: str = "") -> Path:
    """The artifact at ``final``, built by ``build(partial_folder)`` if it does not exist yet (see the module doc).
    ``build`` must leave in the folder only what the artifact holds (scratch files removed). An existing artifact
    whose files do not match its checksums is rebuilt (``on_corrupt="rebuild"``) or refused with ``hint`` on how to
    rebuild it (``"refuse"``).

    In a DDP process other than rank 0, ``build`` runs without the lock, which rank 0 holds while it waits for this
    process in the fit: it joins rank 0's fit in the same ``.partial`` folder and writes nothing (rank 0 writes,
    records the checksums and renames)."""
    final = Path(final)
    if process_rank() > 0 and not final.exists():
        build(partial_dir(final))
        return final
    if final.exists():
        problems = artifact_problems(final)
        if not problems:
            log.info("%s exists, reusing %s", what, final)
            return final
        if on_corrupt == REFUSE:
            raise ArtifactError(corrupt_message(final, what, problems, hint))
    with artifact_lock(final):
        if final.exists() and artifact_problems(final):  # still corrupted once we hold the lock: move it aside
            aside = final.with_name(final.name + ".corrupt")
            shutil.rmtree(aside, ignore_errors=True)
            final.rename(aside)
            log.warning("%s %s is corrupted (%s): moved to %s and building it again", what, final,
                        "; ".join(artifact_problems(aside)), aside)
        if not final.exists():
            work = partial_dir(final)
            work.mkdir(parents=True, exist_ok=True)
            build(work)
            write_checksums(work)
            work.rename(final)
            _VERIFIED[final.resolve()] = _fingerprint(final)
    return final
