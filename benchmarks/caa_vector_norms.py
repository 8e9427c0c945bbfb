"""The norm of each CAA behaviour's full_dataset vector at one layer, and their mean: the value CAA's
normalize_vectors.py rescales every behaviour's vector to (pass it as finetune.normalize_to so that one multiplier
means the same for each behaviour).

    python benchmarks/caa_vector_norms.py [max items per behaviour, default 200] [hydra overrides, e.g. finetune.layer=12]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from fac_lightning.backbone import load_backbone
from fac_lightning.config import compose_config, register_configs
from fac_lightning.data.task_parts import task_part
from fac_lightning.finetune.base import build_finetune
from fac_lightning.plan import plan
from fac_lightning.rows import row_format

BEHAVIOURS = ("coordinate_other_ais", "corrigible_neutral_HHH", "hallucination", "myopic_reward", "refusal",
              "survival_instinct", "sycophancy")

if __name__ == "__main__":
    max_items = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 200
    overrides = [a for a in sys.argv[1:] if "=" in a]
    register_configs()
    cfg = compose_config(["finetune=caa_vector", *overrides])
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    finetune, norms = build_finetune(cfg.finetune), {}
    for behaviour in BEHAVIOURS:
        task_cfg = compose_config([f"task={behaviour}", "finetune=caa_vector", *overrides])
        task = OmegaConf.to_object(task_cfg.task)
        rows = [row_format("ab_item").from_example(e)
                for e in task_part(task, "full_dataset", task_cfg.paths.data_dir)[:max_items]]
        with tempfile.TemporaryDirectory() as work:
            finetune.train(rows, backbone, Path(work), plan(task_cfg).fit_context(None))
            norms[behaviour] = finetune.load(Path(work), backbone)
    layer = next(iter(norms.values())).layer
    print(f"{cfg.backbone.name}, layer {layer}, up to {max_items} full_dataset items per behaviour:")
    for behaviour, vector in norms.items():
        print(f"  {behaviour:24s} |v| = {float(vector.vector_D.float().norm()):.3f}")
    print(f"  mean norm (finetune.normalize_to): {np.mean([float(v.vector_D.float().norm()) for v in norms.values()]):.3f}")
