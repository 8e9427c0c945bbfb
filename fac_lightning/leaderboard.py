"""Leaderboard over experiment runs: one row per strategy, mean ± std over seeds, with FAC of each training set, as
CSV and Markdown, plus a scatter of FAC vs AUPRC with Pearson and Spearman r (paper Fig. 3 / Table 8)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def collect_runs(runs: str | Path) -> pd.DataFrame:
    """One row per run, from the ``metrics.json`` files under a folder or from a W&B group
    (``wandb:<entity>/<project>/<group>``, the group a sweep logs to)."""
    if str(runs).startswith("wandb:"):
        return pd.DataFrame([run_record(run, where) for where, run in wandb_group_runs(str(runs)[len("wandb:"):])])
    files = sorted(Path(runs).rglob("metrics.json"))
    if not files:
        raise FileNotFoundError(f"runs={runs}: no metrics.json found under it")
    return pd.DataFrame([run_record(json.loads(path.read_text()), str(path.parent)) for path in files])


def run_record(run: dict, where: str) -> dict:
    """The leaderboard's columns of one run (``run`` shaped like ``metrics.json``)."""
    bench = run["benchmark"]
    return {"run": where, "strategy": run["strategy"], "seed": run["seed"], "auprc": bench["auprc"], "f1": bench["f1"],
            "precision": bench["precision"], "recall": bench["recall"], "fac": run["fac"]["binary"],
            "train_positives": run["train_positives"], "benchmark": bench["benchmark"], "examples": bench["examples"]}


def wandb_group_runs(path: str) -> list[tuple[str, dict]]:
    """Finished runs of a W&B group, rebuilt into the ``metrics.json`` shape from their config and summary."""
    import wandb

    project, _, group = path.rpartition("/")
    if not project or not group:
        raise ValueError(f"runs=wandb:{path}: expected wandb:<entity>/<project>/<group>")
    found = []
    for run in wandb.Api().runs(project, filters={"group": group}):
        summary, config = dict(run.summary), run.config
        found.append(("/".join(run.path), {
            "strategy": config["synthesis"]["strategy"], "seed": config["seed"],
            "train_positives": summary["train_positives"], "fac": {"binary": summary["fac/binary"]},
            "benchmark": {"benchmark": config["benchmark"]["name"],
                          **{k: summary[f"benchmark/{k}"] for k in ("auprc", "f1", "precision", "recall", "examples")}},
        }))
    if not found:
        raise FileNotFoundError(f"runs=wandb:{path}: the W&B group {group!r} of {project} has no runs")
    return found


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    def fmt(values: pd.Series, scale: float = 100.0) -> str:
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean() * scale:.2f} ± {std * scale:.2f}"

    rows = []
    for strategy, group in runs.groupby("strategy", sort=False):
        rows.append({"strategy": strategy, "seeds": len(group), "AUPRC": fmt(group.auprc), "F1": fmt(group.f1),
                     "FAC": fmt(group.fac), "positives": int(group.train_positives.mean()),
                     "_mean_auprc": group.auprc.mean()})
    table = pd.DataFrame(rows).sort_values("_mean_auprc", ascending=False)
    return table.drop(columns="_mean_auprc")


def correlations(runs: pd.DataFrame) -> dict[str, float]:
    if len(runs) < 3 or runs.fac.nunique() < 2:
        return {"pearson_r": float("nan"), "spearman_rho": float("nan"), "points": len(runs)}
    return {"pearson_r": float(stats.pearsonr(runs.fac, runs.auprc)[0]),
            "spearman_rho": float(stats.spearmanr(runs.fac, runs.auprc)[0]), "points": len(runs)}


def write_leaderboard(folder: str | Path, out_dir: str | Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = collect_runs(folder)
    table = leaderboard(runs)
    corr = correlations(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "leaderboard.csv", index=False)
    bench = runs.benchmark.iloc[0]
    markdown = (f"Benchmark: {bench} ({runs.examples.iloc[0]} examples); mean ± std over seeds, in %.\n\n"
                + table.to_markdown(index=False)
                + f"\n\nFAC vs AUPRC over {corr['points']} runs: Pearson r = {corr['pearson_r']:.2f}, "
                  f"Spearman rho = {corr['spearman_rho']:.2f}\n")
    (out / "leaderboard.md").write_text(markdown)
    fig, ax = plt.subplots(figsize=(5, 4))
    for strategy, group in runs.groupby("strategy"):
        ax.scatter(group.fac, group.auprc, label=strategy)
    ax.set_xlabel("FAC of the training positives")
    ax.set_ylabel(f"AUPRC ({bench})")
    ax.set_title(f"r = {corr['pearson_r']:.2f}, rho = {corr['spearman_rho']:.2f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fac_vs_auprc.png", dpi=120)
    plt.close(fig)
    return {"markdown": markdown, "correlations": corr, "runs": len(runs), "rows": np.asarray(table).tolist()}
