"""Paired differences of a coverage study (``experiment=coverage_study``): at each budget, the primary metric of one
selection mode minus another's, seed by seed (the same seed draws the same background rows and head initialisation),
as mean ± std over seeds, with each side's FAC (frequency variant) and mean tokens per row.

    python benchmarks/coverage_study.py logs/train/multiruns/coverage_study_toxicity
"""

import sys

import pandas as pd

from fac_lightning.leaderboard import LENGTH, benchmark_of, collect_runs

PAIRS = [("select_fac", "select_random"), ("select_fac", "select_random_like_fac"),
         ("select_random_like_anti", "select_anti"), ("select_random", "select_anti")]
"""(A, B): A - B. Greedy vs random; greedy vs random of greedy's lengths (coverage at equal length); random of anti's
lengths vs anti (coverage at equal length, the low end); random vs anti."""


def main(folder: str) -> None:
    runs = collect_runs(folder)
    bench, primary = benchmark_of(runs)
    runs = runs.assign(n_samples=[o.get("n_samples", "?") for o in runs["overrides"]],
                       unit=[o.get("synthesis.budget_unit", "rows") for o in runs["overrides"]])
    metric = f"benchmark/{primary}"
    print(f"{bench}: {primary}, A - B paired by seed, mean ± std over seeds (FAC freq and tokens/row: A / B)\n")
    print("| budget | A | B | A - B | seeds | FAC freq | tokens/row |")
    print("|---|---|---|---:|---:|---|---|")
    for (unit, n), group in sorted(runs.groupby(["unit", "n_samples"]), key=lambda g: (g[0][0], float(g[0][1]))):
        table = group.set_index(["strategy", "seed"])
        for a, b in PAIRS:
            if a not in table.index.get_level_values(0) or b not in table.index.get_level_values(0):
                continue
            diff = (table.loc[a, metric] - table.loc[b, metric]).dropna()
            fac = f"{table.loc[a, 'fac_frequency'].mean():.3f} / {table.loc[b, 'fac_frequency'].mean():.3f}"
            tokens = f"{table.loc[a, LENGTH].mean():.0f} / {table.loc[b, LENGTH].mean():.0f}"
            spread = diff.std(ddof=1) if len(diff) > 1 else float("nan")
            print(f"| {n} {unit} | {a} | {b} | {diff.mean():+.3f} ± {spread:.3f} | {len(diff)} | {fac} | {tokens} |")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main(sys.argv[1])
