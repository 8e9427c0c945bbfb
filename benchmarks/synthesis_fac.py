"""FAC of each synthesis strategy's output against the task anchor, at the same budget, over seeds.

    python benchmarks/synthesis_fac.py experiment=sae_demo n_samples=50 [+bench.seeds=3]

Runs fac (two-step), fac one-step (two_step=false), self_instruct and magpie on the same backbone, SAE, anchor,
relevant features and seed data (each run is a cached synthesis artifact), and prints a Markdown table of FAC (binary,
frequency, magnitude) as mean ± std over seeds, with rows kept, how many of the seed's missing features the rows cover
and the synthesis time each artifact's manifest recorded when it was built (so a table over reused artifacts is still
right), and for fac the share of each step's sampled candidates whose g_i on their target feature exceeds delta.
Strategies that keep fewer rows than the budget are also compared at matched size: binary FAC of each run's first N
rows, N = the fewest rows any run kept.
"""

import json
import statistics
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from fac_lightning.backbone import load_backbone
from fac_lightning.config import register_configs
from fac_lightning.plan import plan
from fac_lightning.rows import row_format
from fac_lightning.stages.feature_space import build_feature_space
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.synthesis import SYNTHESIS, read_row_set, run_synthesis_stage
from fac_lightning.synthesis import STRATEGIES

register_configs()
ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"fac (two-step)": ("fac", True), "fac (one-step)": ("fac", False),
            "self_instruct": ("self_instruct", None), "magpie": ("magpie", None)}


def option(path: Path) -> DictConfig:
    """A group option's YAML without its defaults list (the schema it names is merged explicitly)."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return node


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    seeds = range(cfg.get("bench", {}).get("seeds", 3))
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    space = build_feature_space(plan(cfg), backbone)
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for name, (strategy, two_step) in VARIANTS.items():
        for seed in seeds:
            variant = cfg.copy()
            variant.seed = seed
            variant.synthesis = OmegaConf.merge(OmegaConf.structured(STRATEGIES.get(strategy).config),
                                                option(ROOT / "conf" / "synthesis" / f"{strategy}.yaml"))
            variant.prompts = option(ROOT / "conf" / "prompts" / cfg.task.name / f"{strategy}.yaml")
            if two_step is not None:
                variant.synthesis.two_step = two_step
            folder = run_synthesis_stage(preflight(variant, SYNTHESIS), backbone)
            manifest = json.loads((folder / "manifest.json").read_text())
            rows = [row_format(cfg.task.row_format).scored(r) for r in read_row_set(folder)]
            manifest["table"] = space.table(f"{cfg.task.name}-{manifest['strategy']}", rows)  # cached by synthesis
            results[name].append(manifest)
    target = space.relevant_anchor()
    matched = min(r["rows"] for runs in results.values() for r in runs)
    for runs in results.values():
        for r in runs:
            active = r["table"].active(space.delta, samples=np.arange(matched))
            r["fac_matched"] = float((active & target).sum() / target.sum())
    first = next(iter(results.values()))[0]
    print(f"\nbackbone={cfg.backbone.name} n_samples={cfg.n_samples} seeds={len(seeds)} delta={cfg.features.delta} "
          f"relevance={cfg.relevance.method} relevant anchor features={first['relevant_anchor_features']} "
          f"missing (vs seed)={first['missing_features']}")
    print(f"| strategy | FAC binary | FAC frequency | FAC magnitude | FAC binary, first {matched} rows | rows | "
          "missing features covered | step 1 / step 2 candidates above δ | synthesis s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        fac = {w: mean_std([r["fac"][w] for r in runs]) for w in ("binary", "frequency", "magnitude")}
        print(f"| {name} | {fac['binary']} | {fac['frequency']} | {fac['magnitude']} | "
              f"{mean_std([r['fac_matched'] for r in runs])} | "
              f"{statistics.mean(r['rows'] for r in runs):.1f} | {covered(runs)} | {hit_rates(runs)} | "
              f"{statistics.mean(r['seconds'] for r in runs):.0f} |")


def covered(runs: list[dict]) -> str:
    return f"{statistics.mean(r['missing_features_covered'] for r in runs):.1f} / {runs[0]['missing_features']}"


def hit_rates(runs: list[dict]) -> str:
    """Step 1 / step 2 candidates above delta over sampled, pooled over seeds ("-" where a run has no such step;
    older manifests have no tallies)."""
    rates = []
    for step in (1, 2):
        sampled = sum(r.get("tallies", {}).get(f"step{step}_sampled", 0) for r in runs)
        above = sum(r.get("tallies", {}).get(f"step{step}_above_delta", 0) for r in runs)
        rates.append(f"{above / sampled:.2f}" if sampled else "-")
    return " / ".join(rates)


if __name__ == "__main__":
    main()
