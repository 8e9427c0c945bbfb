"""How many features a task's anchor contrast calls relevant (relevance=label_contrast), how many of them its seed
misses, and the strongest evidence (smallest BH q) — for comparing anchor choices. Extra arguments are Hydra
overrides of the train config.

    python benchmarks/anchor_contrast.py task=reward
    python benchmarks/anchor_contrast.py task=reward \
        'task.parts.anchor_positive.sources=[{name: hh_helpful_chosen, format: hh_transcript, field: chosen, label: 1, hub_id: Anthropic/hh-rlhf, hub_data_dir: helpful-base, split: test, local_path: hh-rlhf/helpful-base.test.jsonl.gz, max_rows: 800}]' \
        'task.parts.anchor_negative.sources=[{name: hh_helpful_rejected, format: hh_transcript, field: rejected, label: 0, hub_id: Anthropic/hh-rlhf, hub_data_dir: helpful-base, split: test, local_path: hh-rlhf/helpful-base.test.jsonl.gz, max_rows: 800}]'
"""

import sys

from fac_lightning.backbone import load_backbone
from fac_lightning.config import compose_config, register_configs
from fac_lightning.plan import plan
from fac_lightning.stages.feature_space import build_feature_space

if __name__ == "__main__":
    register_configs()
    run = plan(compose_config(["experiment=sae_demo", "stage=experiment", *sys.argv[1:]]))
    space = build_feature_space(run, load_backbone(run.backbone, run.paths.cache_dir))
    missing = space.missing(space.table(run.seed_table.label, run.seed_conversations))
    q = min((r["q"] for r in space.records.values()), default=float("nan"))
    print(f"anchor: {int(space.anchor.num_samples)} samples; relevant features: {int(space.relevant.sum())} of "
          f"{space.anchor.num_features}; missing from the seed: {len(missing)}; smallest BH q: {q:.3f}")
