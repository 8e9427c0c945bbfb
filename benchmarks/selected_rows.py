"""The rows select_fac and select_anti keep at one budget, in their order, verbatim, each with the missing features
it newly covers: latent id, its relevance evidence (the judge's explanation, or the label contrast) and its
top-activating anchor span. Reads the cached SAE and tables of experiment=coverage_study (a first run scores them).

    python benchmarks/selected_rows.py task=toxicity n_samples=25
    python benchmarks/selected_rows.py task=reward n_samples=25 [rows_shown=10]
"""

import sys

from fac_lightning.backbone import load_backbone
from fac_lightning.config import compose_config, register_configs
from fac_lightning.plan import plan
from fac_lightning.stages.feature_space import build_feature_space
from fac_lightning.stages.synthesis import synthesis_context


def evidence(feature: int, record: dict, spans: dict) -> str:
    why = (record["explanation"] if "explanation" in record
           else f"label contrast log-odds {record['log_odds']:.2f}, BH q {record['q']:.1e}" if "q" in record else "")
    span = " ".join(spans[feature][0].text.split()) if spans.get(feature) else "(no span)"
    return f"f{feature} ({why}): {span!r}"


def main(overrides: list[str], rows_shown: int) -> None:
    register_configs()
    run = plan(compose_config(["experiment=coverage_study", *overrides]))
    space = build_feature_space(run, load_backbone(run.backbone, run.paths.cache_dir))
    for mode in ("select_fac", "select_anti"):
        mode_run = plan(compose_config(["experiment=coverage_study", *overrides, f"synthesis={mode}"]))
        strategy = mode_run.strategy
        strategy.context = synthesis_context(mode_run, space)
        strategy.start()
        covered = sum(len(p.new_features) for p in strategy.picks)
        print(f"\n### {run.task.name}: {mode}, budget {run.n_samples} {strategy.cfg.budget_unit}, seed {run.seed}: "
              f"{len(strategy.picks)} rows cover {covered} of {len(strategy.context.missing)} missing features "
              f"(the first {rows_shown} rows)\n")
        for i, pick in enumerate(strategy.picks[:rows_shown], start=1):
            row = strategy.pool[pick.row]
            print(f"{i}. pool row {pick.row}, {int(strategy.tokens_N[pick.row])} tokens, {pick.criterion}: "
                  f"{strategy.format.query(row)!r}")
            if strategy.format.query(row) != strategy.format.scored(row)[-1]["content"]:
                print(f"   - answer scored with it: {strategy.format.scored(row)[-1]['content']!r}")
            for feature in pick.new_features[:5]:
                print(f"   - {evidence(feature, space.records.get(feature, {}), space.anchor.spans)}")
            if len(pick.new_features) > 5:
                print(f"   - ... and {len(pick.new_features) - 5} more")


if __name__ == "__main__":
    shown = [a for a in sys.argv[1:] if a.startswith("rows_shown=")]
    main([a for a in sys.argv[1:] if a not in shown], int(shown[0].split("=")[1]) if shown else 10)
