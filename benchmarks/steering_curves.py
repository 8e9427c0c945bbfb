"""P(matching behaviour), accuracy as written and robust accuracy against the multiplier, per behaviour and strategy
(paper Fig. 13-14), from the caa_ab results of a sweep's runs (their metrics.json): prints the table (means over
the runs) and writes the plot of P(matching).

    python benchmarks/steering_curves.py logs/train/multiruns/<steering sweep> [out.png]
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def curves(folder: Path) -> dict:
    """{(task, strategy, swept layer): {multiplier: [(p_matching, accuracy, robust_accuracy) per run],
    "scr": [(scr, its standard error) per run]}}"""
    found = defaultdict(lambda: defaultdict(list))
    for path in sorted(folder.rglob("metrics.json")):
        run = json.loads(path.read_text())
        bench = run["benchmark"]
        if bench.get("kind") != "caa_ab":
            continue
        extra = " ".join(o for o in run.get("overrides", []) if o.startswith("finetune.layer"))
        for row in bench["per_multiplier"].values():
            found[run["task"], run["strategy"], extra][row["multiplier"]].append(
                (row["p_matching"], row["accuracy"], row["robust_accuracy"]))
        found[run["task"], run["strategy"], extra]["scr"].append((bench["metrics"]["scr"], bench["metrics"]["scr_se"]))
    if not found:
        raise FileNotFoundError(f"{folder}: no caa_ab metrics.json under it")
    return found


def main(folder: Path, out: Path) -> None:
    found = curves(folder)
    tasks = sorted({task for task, _, _ in found})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    def order(key):
        task, strategy, extra = key
        return task, strategy, int(extra.rpartition("=")[2] or 0)

    for (task, strategy, extra), by_multiplier in sorted(found.items(), key=lambda item: order(item[0])):
        scr = by_multiplier.pop("scr")
        multipliers = sorted(by_multiplier)
        p, accuracy, robust = ([np.mean([r[i] for r in by_multiplier[m]]) for m in multipliers] for i in range(3))
        runs = len(next(iter(by_multiplier.values())))
        print(f"{task:18s} {strategy:14s} {extra:18s} runs={runs}  SCR {np.mean([v for v, _ in scr]):+.2f} "
              f"(SE {np.mean([e for _, e in scr]):.2f})  " + "  ".join(
            f"{f'{m:+g}' if m else '0'}: p={pm:.3f} acc={ac:.2f} rob={ra:.2f}"
            for m, pm, ac, ra in zip(multipliers, p, accuracy, robust, strict=True)))
        ax = axes[0, tasks.index(task)]
        ax.plot(multipliers, p, marker="o", label=f"{strategy} {extra}".strip())
        ax.set_title(task)
        ax.set_xlabel("multiplier")
        ax.set_ylabel("P(answer matching behaviour)")
    for ax in axes[0]:
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    sweep = Path(sys.argv[1])
    main(sweep, Path(sys.argv[2]) if len(sys.argv) > 2 else sweep / "steering_curves.png")
