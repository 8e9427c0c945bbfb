"""A stage's output on a fixed tiny input moves only with its version.

The whole chain runs on the tiny random Llama (fixed weights, fixed data, fixed seeds): the SAE, the anchor table, the
relevance selection (``all``, and label contrast on the same table), FAC's rows (tiny-model generation), G-Vendi and
a head-only classifier. The other strategies, relevance methods and finetune kinds are not covered here: their own
tests pin behaviour, and their ``version`` is bumped by review. Each
stage's output is summarised (weights' norms, scores, chosen features, the rows' text, the metric) and compared with
``tests/stage_outputs.json``. An output that moved while the stage's version (``plan.Stage.version``) did not fails:
cached artifacts of that stage would be reused with the old meaning. Bump the version (the stage module's ``VERSION``
or the component's ``version``), then record the new outputs with ``FAC_UPDATE_STAGE_OUTPUTS=1 pytest
tests/test_stage_versions.py``. A version that moved with an unrecorded output fails the same way until recorded.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from fac_lightning.features.table import FeatureTable
from fac_lightning.finetune.base import VERSION as FINETUNE_VERSION
from fac_lightning.finetune.base import build_finetune
from fac_lightning.plan import plan
from fac_lightning.relevance import select_relevant
from fac_lightning.relevance.label_contrast import LabelContrast, LabelContrastConfig
from fac_lightning.stages.experiment import run_experiment
from fac_lightning.stages.feature_space import VERSION as FEATURE_SPACE_VERSION
from tests.stages.test_experiment import chain_config

GOLDEN = Path(__file__).with_name("stage_outputs.json")
RTOL = 1e-3


def summaries(cfg, result: dict) -> dict[str, dict]:
    """Per stage: its version and a summary of its output."""
    run = plan(cfg)
    weights = load_file(run.sae.path / "sae.safetensors")
    anchor = FeatureTable.load(run.anchor.path)
    relevant = json.loads((run.relevant.path / "relevance.json").read_text())["relevant"]
    contrast = LabelContrastConfig(method="label_contrast", fdr=1.0, min_positive=1, min_log_odds=0.0)
    contrasted, records = select_relevant(contrast, anchor, np.array(run.anchor_set[1]), cfg.features.delta, "", None,
                                          None)
    rows = (Path(result["synthetic"]) / "rows.jsonl").read_text().splitlines()
    strategy, finetune = plan(cfg).strategy, build_finetune(cfg.finetune)
    head = load_file(Path(result["model"]) / "head.safetensors")
    return {
        "sae": {"version": run.sae.version,
                "output": [round(float(np.abs(weights[k]).sum()), 6) for k in sorted(weights)]},
        "features": {"version": run.anchor.version,
                     "output": [len(anchor.score), float(anchor.score.sum()),
                                *(s.text for s in anchor.spans[min(anchor.spans)][:3])]},
        "relevance": {"version": run.relevant.version, "output": relevant},
        "label_contrast": {"version": [FEATURE_SPACE_VERSION, LabelContrast.version],
                           "output": [*np.flatnonzero(contrasted).tolist(), len(records),
                                      *(float(sum(r[k] for r in records.values())) for k in ("log_odds", "p"))]},
        "rows": {"version": list(run.rows(strategy).version),
                 "output": [json.dumps({k: v for k, v in json.loads(r).items() if k != "provenance"}) for r in rows]},
        "g_vendi": {"version": run.g_vendi("x").version, "output": [result["g_vendi"]]},
        "finetune": {"version": [FINETUNE_VERSION, finetune.version],
                     "output": [round(float(np.abs(head[k]).sum()), 6) for k in sorted(head)]},
    }


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        np.isclose(x, y, rtol=RTOL) if isinstance(x, float) and isinstance(y, float) else x == y for x, y in zip(a, b))


@pytest.mark.slow
def test_a_stage_output_moves_only_with_its_version(tiny_llama_dir, tmp_path):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=fac", "g_vendi.dim=16", "finetune=classifier_head")
    now = json.loads(json.dumps(summaries(cfg, run_experiment(cfg))))
    if os.environ.get("FAC_UPDATE_STAGE_OUTPUTS"):
        GOLDEN.write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in now.items()) + "\n}\n")
    recorded = json.loads(GOLDEN.read_text())
    moved = [stage for stage in now if not same(now[stage]["output"], recorded[stage]["output"])]
    unbumped = [s for s in moved if now[s]["version"] == recorded[s]["version"]]
    assert not unbumped, (f"the output of {unbumped} changed on the fixed tiny input while the version did not: bump "
                          "the stage's VERSION (or the component's version) so that cached artifacts are not reused "
                          "with the old meaning, then record: FAC_UPDATE_STAGE_OUTPUTS=1 pytest " + __file__)
    unrecorded = [s for s in now if now[s]["version"] != recorded[s]["version"]]
    assert not unrecorded, f"{unrecorded}: new version, record its output (FAC_UPDATE_STAGE_OUTPUTS=1 pytest {__file__})"
