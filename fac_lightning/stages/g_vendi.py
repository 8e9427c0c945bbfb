"""G-Vendi of the row set a run trains on, measured once per row set and read by every run that trains on it.

Artifact: ``<artifacts_dir>/g_vendi/<row set folder>-<hash>/g_vendi.json``, keyed by the row set (its folder name
holds its own key), the gradient settings and the proxy (the backbone, with the dtype it runs in, when ``proxy`` is
None): ``plan.RunPlan.g_vendi``. Separate from the row set, so that measuring with other settings never touches the rows. Like FAC, it reads
the rows a row format measures (toxicity: the toxic side).
"""

from pathlib import Path

from fac_lightning.artifacts import REBUILD, ensure_artifact, key_fields, write_json_atomic
from fac_lightning.backbone import Backbone
from fac_lightning.files import read_json
from fac_lightning.metrics.g_vendi import GradientSketch, g_vendi
from fac_lightning.plan import RunPlan
from fac_lightning.stages.synthesis import read_row_set


def measure_g_vendi(run: RunPlan, backbone: Backbone, rows_dir: str | Path) -> float | None:
    """The G-Vendi of the run's row set in ``rows_dir`` (None when ``g_vendi.enabled`` is false or no row is
    measured)."""
    settings, strategy = run.g_vendi_config, run.strategy
    if not settings.enabled:
        return None

    def build(work: Path) -> None:
        measured = [r for r in read_row_set(rows_dir) if strategy.format.measured(r, strategy.task.label)]
        conversations = [strategy.format.scored(r) for r in measured]
        score = (g_vendi(GradientSketch.for_backbone(settings, backbone), conversations, settings.max_rows,
                         settings.projection_seed) if conversations else None)
        write_json_atomic(work / "g_vendi.json", {"g_vendi": score, "measured_rows": len(conversations),
                                                  "rows": str(rows_dir), "config": key_fields(settings)})

    folder = ensure_artifact(run.g_vendi(Path(rows_dir).name).path, build, "G-Vendi", on_corrupt=REBUILD)
    return read_json(folder / "g_vendi.json")["g_vendi"]
