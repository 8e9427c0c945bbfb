"""Leaderboard over experiment runs, for any task and benchmark: one row per group of runs, mean ± std over
seeds of every benchmark metric and of FAC, ranked by the benchmark's primary metric (higher is better); plus
how FAC and the text-diversity metrics correlate with that metric over runs (paper Fig. 3 / Fig. 9 / Table 8).

Grouping rule: runs are grouped by strategy × the value of every *swept* config key, i.e. every Hydra task
override (``key=value``) whose value differs across the runs; a run without the override has the value
``(default)``. Not swept keys: ``seed`` (the runs of a group are its seeds, averaged), ``synthesis`` (the
strategy selector; the strategy is a column already), ``experiment`` and ``hydra.*`` / ``hydra/*``. So the
sweep ``synthesis=fac,magpie synthesis.temperature=0.4,0.8 seed=0,1,2`` gives 4 rows of 3 seeds each.

A run's row (``run_record``): run, task, strategy, seed, benchmark, primary, examples, train_rows,
``benchmark/<metric>`` for each benchmark metric, ``fac`` (binary), ``fac_frequency``, ``fac_magnitude``,
``text/<metric>`` for each text-diversity metric, and ``overrides`` ({key: value}). The prefixes are the keys
the experiment logs to W&B, so a W&B group and a folder of ``metrics.json`` give the same table.
"""

import json
import math
from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback
from scipy import stats

DEFAULT = "(default)"
NOT_SWEPT = ("seed", "synthesis", "experiment")


def _num(value) -> float:
    """A metric as a float; NaN where missing (None, or not a number, as W&B may store it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """Hydra task overrides (``key=value``, ``+key=value``, ``++key=value``, ``~key``) as {key: value}."""
    parsed = {}
    for override in overrides or []:
        key, sep, value = str(override).partition("=")
        deleted = key.startswith("~")
        parsed[key.lstrip("+~")] = "(deleted)" if deleted else value if sep else ""
    return parsed


def run_record(run: dict, where: str) -> dict:
    """The columns of one run (``run`` shaped like ``metrics.json``; see the module docstring)."""
    bench, fac = run["benchmark"], run.get("fac") or {}
    return {"run": where, "task": run.get("task"), "strategy": run["strategy"], "seed": run.get("seed"),
            "benchmark": bench["name"], "primary": bench["primary"], "examples": bench.get("examples"),
            "train_rows": run.get("train_rows"),
            **{f"benchmark/{k}": _num(v) for k, v in bench["metrics"].items()},
            "fac": _num(fac.get("binary")), "fac_frequency": _num(fac.get("frequency")),
            "fac_magnitude": _num(fac.get("magnitude")),
            **{f"text/{k}": _num(v) for k, v in (run.get("text") or {}).items()},
            "overrides": parse_overrides(run.get("overrides") or [])}


def collect_runs(runs: str | Path) -> pd.DataFrame:
    """One row per run, from the ``metrics.json`` files under a folder (searched recursively) or from a W&B
    group (``wandb:<entity>/<project>/<group>``, the group a sweep logs to)."""
    if str(runs).startswith("wandb:"):
        records = [run_record(run, where) for where, run in wandb_group_runs(str(runs)[len("wandb:"):])]
    else:
        files = sorted(Path(runs).rglob("metrics.json"))
        if not files:
            raise FileNotFoundError(f"runs={runs}: no metrics.json found under it")
        records = [run_record(json.loads(path.read_text()), str(path.parent)) for path in files]
    table = pd.DataFrame(records)
    unmeasured = [c for c in table.columns if c.startswith("text/") and table[c].isna().all()]
    return table.drop(columns=unmeasured)  # e.g. the embedding metric without an embedder (W&B logs no None)


def wandb_group_runs(path: str) -> list[tuple[str, dict]]:
    """Runs of a W&B group, rebuilt into the ``metrics.json`` shape from their config (key ``run``) and
    summary (``fac/*``, ``text/*``, ``benchmark/*``). Runs without a ``run`` config or a primary metric
    (crashed, or not from the experiment) are skipped."""
    import wandb

    project, _, group = path.rpartition("/")
    if not project or not group:
        raise ValueError(f"runs=wandb:{path}: expected wandb:<entity>/<project>/<group>")
    found = []
    for run in wandb.Api().runs(project, filters={"group": group}):
        summary, info = dict(run.summary), (run.config or {}).get("run")
        if not info or f"benchmark/{info.get('primary')}" not in summary:
            continue
        logged = {kind: {k[len(kind) + 1:]: v for k, v in summary.items() if k.startswith(f"{kind}/")}
                  for kind in ("fac", "text", "benchmark")}
        found.append(("/".join(run.path), {
            "task": info.get("task"), "strategy": info["strategy"], "seed": info.get("seed"),
            "overrides": list(info.get("overrides") or []), "train_rows": info.get("train_rows"),
            "fac": logged["fac"], "text": logged["text"],
            "benchmark": {"name": info["benchmark"], "primary": info["primary"],
                          "examples": info.get("examples"), "metrics": logged["benchmark"]},
        }))
    if not found:
        raise FileNotFoundError(f"runs=wandb:{path}: the W&B group {group!r} of {project} has no "
                                "experiment runs")
    return found


def swept_keys(runs: pd.DataFrame) -> list[str]:
    """The override keys whose value differs across runs (absent = ``(default)``), in order of appearance; not
    ``seed``, ``synthesis``, ``experiment`` or ``hydra.*`` / ``hydra/*``."""
    overrides = list(runs["overrides"])
    keys = dict.fromkeys(k for o in overrides for k in o
                         if k not in NOT_SWEPT and not k.startswith(("hydra.", "hydra/")))
    return [k for k in keys if len({o.get(k, DEFAULT) for o in overrides}) > 1]


def benchmark_of(runs: pd.DataFrame) -> tuple[str, str]:
    """(benchmark, primary metric) shared by all runs; ValueError if they mix benchmarks."""
    pairs = sorted(set(zip(runs["benchmark"], runs["primary"], strict=True)))
    if len(pairs) != 1:
        raise ValueError(f"the runs mix benchmarks {[f'{b} ({p})' for b, p in pairs]}; a leaderboard "
                         "compares one benchmark: pass the runs of one benchmark")
    if f"benchmark/{pairs[0][1]}" not in runs:
        raise ValueError(f"no run reports the primary metric {pairs[0][1]!r} of {pairs[0][0]}")
    return pairs[0]


def mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {std:.3f}"


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, swept key values): seeds, each benchmark metric and FAC as mean ± std over the
    group's runs, mean train rows; sorted by the mean of the primary metric, descending."""
    _, primary = benchmark_of(runs)
    keys = swept_keys(runs)
    metrics = [f"benchmark/{primary}"] + [c for c in runs.columns
                                           if c.startswith("benchmark/") and c != f"benchmark/{primary}"]
    runs = runs.assign(**{k: [o.get(k, DEFAULT) for o in runs["overrides"]] for k in keys})
    rows = []
    for values, group in runs.groupby(["strategy", *keys], sort=False, dropna=False):
        rows.append({"strategy": values[0], **dict(zip(keys, values[1:], strict=True)), "seeds": len(group),
                     **{m[len("benchmark/"):]: mean_std(group[m]) for m in metrics},
                     "FAC": mean_std(group["fac"]), "train rows": _int_mean(group["train_rows"]),
                     "_rank": group[f"benchmark/{primary}"].mean()})
    table = pd.DataFrame(rows).sort_values("_rank", ascending=False, kind="stable", na_position="last")
    return table.drop(columns="_rank").reset_index(drop=True)


def _int_mean(values: pd.Series):
    mean = pd.to_numeric(values, errors="coerce").mean()
    return None if math.isnan(mean) else round(mean)


def correlations(runs: pd.DataFrame) -> pd.DataFrame:
    """Pearson r and Spearman rho over runs of FAC (binary, frequency, magnitude) and each text-diversity
    metric vs the primary benchmark metric, with the number of runs that have both; NaN under 3 points or when
    either is constant."""
    _, primary = benchmark_of(runs)
    target = runs[f"benchmark/{primary}"]
    rows = []
    text = [c for c in runs.columns if c.startswith("text/")]
    for metric in ["fac", "fac_frequency", "fac_magnitude", *text]:
        both = pd.DataFrame({"x": runs[metric], "y": target}).astype(float).dropna()
        r = rho = math.nan
        if len(both) >= 3 and both.x.nunique() > 1 and both.y.nunique() > 1:
            r, rho = float(stats.pearsonr(both.x, both.y)[0]), float(stats.spearmanr(both.x, both.y)[0])
        rows.append({"metric": metric, "pearson_r": r, "spearman_rho": rho, "points": len(both)})
    return pd.DataFrame(rows)


def write_leaderboard(folder: str | Path, out_dir: str | Path) -> dict:
    """leaderboard.csv, leaderboard.md (table and correlations) and fac_vs_<primary>.png under ``out_dir``,
    for the runs under ``folder`` (or a ``wandb:`` group); runs of several benchmarks (a sweep over tasks, as
    ``make demo``) get one table each, their files suffixed ``_<benchmark>``. Returns the markdown, the correlations
    (records), the number of runs and the tables' rows (records)."""
    runs = collect_runs(folder)
    benchmarks = list(dict.fromkeys(runs["benchmark"]))
    parts = [write_benchmark_leaderboard(runs[runs["benchmark"] == bench], Path(out_dir),
                                         "" if len(benchmarks) == 1 else f"_{bench}") for bench in benchmarks]
    return {"markdown": "\n".join(p["markdown"] for p in parts), "runs": len(runs),
            "correlations": [c for p in parts for c in p["correlations"]], "rows": [r for p in parts for r in p["rows"]]}


def write_benchmark_leaderboard(runs: pd.DataFrame, out: Path, suffix: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = runs.dropna(axis=1, how="all")  # another benchmark's metric columns
    table, corr = leaderboard(runs), correlations(runs)
    bench, primary = benchmark_of(runs)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"leaderboard{suffix}.csv", index=False)
    examples = "/".join(str(e) for e in runs["examples"].drop_duplicates())
    tasks = ", ".join(str(t) for t in runs["task"].drop_duplicates())
    markdown = (f"Benchmark: {bench} ({examples} examples; task {tasks}), ranked by {primary}; mean ± std over seeds, "
                f"{len(runs)} runs.\n\n" + table.to_markdown(index=False)
                + f"\n\nCorrelation with {primary} over runs:\n\n"
                + corr.to_markdown(index=False, floatfmt=".3f") + "\n")
    (out / f"leaderboard{suffix}.md").write_text(markdown)
    fac = corr.set_index("metric").loc["fac"]
    fig, ax = plt.subplots(figsize=(5, 4))
    for strategy, group in runs.groupby("strategy"):
        ax.scatter(group["fac"], group[f"benchmark/{primary}"], label=strategy)
    ax.set_xlabel("FAC of the training set")
    ax.set_ylabel(f"{primary} ({bench})")
    ax.set_title(f"Pearson r = {fac.pearson_r:.2f}, Spearman rho = {fac.spearman_rho:.2f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"fac_vs_{primary}{suffix}.png", dpi=120)
    plt.close(fig)
    return {"markdown": markdown, "correlations": corr.to_dict("records"), "rows": table.to_dict("records")}


class SweepLeaderboard(Callback):
    """Hydra callback (``hydra/default.yaml``): when a ``-m`` sweep of train.py ends, print its leaderboard and write
    it into the sweep folder (the same as ``evaluate.py mode=leaderboard runs=<sweep folder>``)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        if any(folder.rglob("metrics.json")):
            print(write_leaderboard(folder, folder)["markdown"])
