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
``g_vendi`` (gradient-space diversity, ``metrics/g_vendi.py``), ``text/<metric>`` for each text-diversity metric,
and ``overrides`` ({key: value}). The prefixes are the keys the experiment logs to W&B, so a W&B group and a folder of ``metrics.json`` give the same table.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats

from fac_lightning.files import read_json

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
            **({"base_rate": _num(bench["base_rate"])} if bench.get("base_rate") is not None else {}),
            "train_rows": run.get("train_rows"),
            **{f"benchmark/{k}": _num(v) for k, v in bench["metrics"].items()},
            "fac": _num(fac.get("binary")), "fac_frequency": _num(fac.get("frequency")),
            "fac_magnitude": _num(fac.get("magnitude")), "g_vendi": _num(run.get("g_vendi")),
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
        records = [run_record(read_json(path), str(path.parent)) for path in files]
    table = pd.DataFrame(records)
    unmeasured = [c for c in table.columns if (c.startswith("text/") or c == "g_vendi") and table[c].isna().all()]
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
            "fac": logged["fac"], "g_vendi": summary.get("g_vendi"), "text": logged["text"],
            "benchmark": {"name": info["benchmark"], "primary": info["primary"], "examples": info.get("examples"),
                          "base_rate": info.get("base_rate"), "metrics": logged["benchmark"]},
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


def mean_std(values: pd.Series, digits: int = 3) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, swept key values): seeds, each benchmark metric and the three FAC variants as mean ± std
    over the group's runs, the mean backbone tokens per measured row (where runs record it), mean train rows; sorted by the mean of the primary metric, descending."""
    _, primary = benchmark_of(runs)
    keys = swept_keys(runs)
    metrics = [f"benchmark/{primary}"] + [c for c in runs.columns
                                           if c.startswith("benchmark/") and c != f"benchmark/{primary}"]
    runs = runs.assign(**{k: [o.get(k, DEFAULT) for o in runs["overrides"]] for k in keys})
    rows = []
    for values, group in runs.groupby(["strategy", *keys], sort=False, dropna=False):
        rows.append({"strategy": values[0], **dict(zip(keys, values[1:], strict=True)), "seeds": len(group),
                     **{m[len("benchmark/"):]: mean_std(group[m]) for m in metrics},
                     "FAC": mean_std(group["fac"]), "FAC freq": mean_std(group["fac_frequency"]),
                     "FAC mag": mean_std(group["fac_magnitude"]),
                     **({"G-Vendi": mean_std(group["g_vendi"], 2)} if measured(runs, "g_vendi") else {}),
                     **({"tokens/row": round(group[LENGTH].mean(), 1)} if LENGTH in group else {}),
                     "train rows": _int_mean(group["train_rows"]),
                     "_rank": group[f"benchmark/{primary}"].mean()})
    table = pd.DataFrame(rows).sort_values("_rank", ascending=False, kind="stable", na_position="last")
    return table.drop(columns="_rank").reset_index(drop=True)


def measured(runs: pd.DataFrame, column: str) -> bool:
    """Whether any run has a value in ``column`` (runs from before a metric existed have none)."""
    return column in runs and runs[column].notna().any()


def _int_mean(values: pd.Series):
    mean = pd.to_numeric(values, errors="coerce").mean()
    return None if math.isnan(mean) else round(mean)


LENGTH = "text/mean_tokens"
"""Mean backbone tokens of a run's measured rows: longer rows activate more features and train better classifiers,
so every correlation is also given with this held fixed (partial correlation)."""
CONFIDENCE = 0.95


def _pearson_ci(r: float, n: int, controls: int = 0) -> tuple[float, float]:
    """Fisher-z interval of a (partial, with ``controls`` variables held fixed) Pearson correlation."""
    if n - 3 - controls < 1 or not math.isfinite(r):
        return math.nan, math.nan
    half = stats.norm.ppf(0.5 + CONFIDENCE / 2) / math.sqrt(n - 3 - controls)
    z = math.atanh(min(max(r, -0.999999), 0.999999))
    return math.tanh(z - half), math.tanh(z + half)


def _spearman_along(x, y, axis=-1):
    """Spearman rho along ``axis`` (vectorized for scipy's bootstrap): Pearson of the ranks."""
    rx, ry = stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis)
    rx, ry = rx - rx.mean(axis=axis, keepdims=True), ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))


def _residuals(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones_like(z), z])
    return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]


def correlation(x: pd.Series, y: pd.Series, z: pd.Series | None = None) -> dict:
    """Pearson r (95 % CI: Fisher z, as scipy's ``confidence_interval``), Spearman rho (95 % CI: paired percentile
    bootstrap, 2,000 resamples, seeded) and, given ``z``, the partial Pearson r of x and y with z held fixed (linear
    residuals; Fisher z with one control). NaN under 3 points (partial: 4) or when a variable is constant."""
    both = pd.DataFrame({"x": x, "y": y, "z": z if z is not None else 0.0}).astype(float).dropna()
    out = dict.fromkeys(["pearson_r", "pearson_lo", "pearson_hi", "spearman_rho", "spearman_lo", "spearman_hi",
                         "partial_r", "partial_lo", "partial_hi"], math.nan)
    out["points"] = len(both)
    if len(both) < 3 or both.x.nunique() < 2 or both.y.nunique() < 2:
        return out
    fit = stats.pearsonr(both.x, both.y)
    out["pearson_r"] = float(fit.statistic)
    if len(both) > 3:
        out["pearson_lo"], out["pearson_hi"] = map(float, fit.confidence_interval(CONFIDENCE))
    out["spearman_rho"] = float(stats.spearmanr(both.x, both.y).statistic)
    with warnings.catch_warnings():  # resamples that repeat one point give NaN; the percentiles skip them
        warnings.simplefilter("ignore")
        boot = stats.bootstrap((both.x.to_numpy(), both.y.to_numpy()), _spearman_along, paired=True,
                               vectorized=True, n_resamples=2000, confidence_level=CONFIDENCE, method="percentile",
                               rng=np.random.default_rng(0))
    out["spearman_lo"], out["spearman_hi"] = map(float, boot.confidence_interval)
    if z is not None and len(both) >= 4 and both.z.nunique() > 1:
        rx, ry = _residuals(both.x.to_numpy(), both.z.to_numpy()), _residuals(both.y.to_numpy(), both.z.to_numpy())
        if np.std(rx) > 1e-12 and np.std(ry) > 1e-12:
            out["partial_r"] = float(np.corrcoef(rx, ry)[0, 1])
            out["partial_lo"], out["partial_hi"] = _pearson_ci(out["partial_r"], len(both), controls=1)
    return out


def correlations(runs: pd.DataFrame, within: list[str] = ()) -> pd.DataFrame:
    """Per metric (FAC binary, frequency, magnitude, G-Vendi where runs have it, then each text metric, mean row
    length among them) its
    correlation with the primary benchmark metric over runs (``correlation``: Pearson, Spearman, partial given
    ``text/mean_tokens`` where runs record it), with the number of runs that have both. ``within``: swept keys; one
    block per combination of their values (e.g. per budget, so set size does not drive the correlation)."""
    _, primary = benchmark_of(runs)
    text = [c for c in runs.columns if c.startswith("text/")]
    length = runs.get(LENGTH)
    within = list(within)
    values = runs.assign(**{k: [o.get(k, DEFAULT) for o in runs["overrides"]] for k in within})
    rows = []
    groups = [((), values)] if not within else sorted(
        ((v if isinstance(v, tuple) else (v,), g) for v, g in values.groupby(within, sort=False)),
        key=lambda item: [_natural(v) for v in item[0]])
    for group_values, group in groups:
        for metric in ["fac", "fac_frequency", "fac_magnitude", *(["g_vendi"] if measured(runs, "g_vendi") else []),
                       *text]:
            z = None if length is None or metric == LENGTH else length.loc[group.index]
            rows.append({**dict(zip(within, group_values, strict=True)), "metric": metric,
                         **correlation(group[metric], group[f"benchmark/{primary}"], z)})
    return pd.DataFrame(rows)


def _natural(value: str) -> tuple:
    """Sort key of a swept value: numbers by value (10 before 100), then the rest as text."""
    number = _num(value)
    return (0, number, "") if math.isfinite(number) else (1, 0.0, str(value))


def with_ci(value: float, lo: float, hi: float) -> str:
    """``0.67 [0.33, 0.85]``; ``n/a`` where the value is undefined."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" + ("" if math.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]")


def correlation_markdown(corr: pd.DataFrame, primary: str, within: list[str] = ()) -> str:
    """The correlations with their 95 % CIs, rows with fewer than 3 runs left out; ``within``: one column per
    combination of the keys' values, a table each for Pearson, Spearman and partial-given-length."""
    corr = corr[corr.points >= 3]
    if corr.empty:
        return f"No correlation with {primary}: fewer than 3 runs share a metric.\n"
    cells = corr.assign(pearson=[with_ci(r.pearson_r, r.pearson_lo, r.pearson_hi) for r in corr.itertuples()],
                        spearman=[with_ci(r.spearman_rho, r.spearman_lo, r.spearman_hi) for r in corr.itertuples()],
                        partial=[with_ci(r.partial_r, r.partial_lo, r.partial_hi) for r in corr.itertuples()])
    names = {"pearson": "Pearson r [95% CI]", "spearman": "Spearman rho [95% CI]",
             "partial": f"partial r given {LENGTH} [95% CI]"}
    if not within:
        return (f"Correlation with {primary} over runs:\n\n"
                + cells[["metric", "points", *names]].rename(columns=names).to_markdown(index=False) + "\n")
    label = cells[list(within)].astype(str).apply(lambda r: ", ".join(r), axis=1)
    cells = cells.assign(group=label)
    parts = []
    for column, name in names.items():
        metrics = [m for m in dict.fromkeys(cells.metric) if not (column == "partial" and m == LENGTH)]
        table = cells.pivot(index="metric", columns="group", values=column).reindex(
            index=metrics, columns=list(dict.fromkeys(cells.group)))
        parts.append(f"{name} with {primary}, within each {', '.join(within)} (columns; runs per cell: "
                     f"{'/'.join(str(p) for p in cells.points.unique())}):\n\n{table.to_markdown()}\n")
    return "\n".join(parts)


def write_leaderboard(folder: str | Path, out_dir: str | Path) -> dict:
    """leaderboard.csv, leaderboard.md (table and correlations) and fac_vs_<primary>.png under ``out_dir``,
    for the runs under ``folder`` (or a ``wandb:`` group); runs of several benchmarks (a sweep over tasks, as
    ``make demo``) get one table each, their files suffixed ``_<benchmark>``. Returns the markdown, the correlations
    (records), the number of runs and the tables' rows (records)."""
    runs = collect_runs(folder)
    benchmarks = list(dict.fromkeys(runs["benchmark"]))
    suffixes = ["" if len(benchmarks) == 1 else f"_{bench}" for bench in benchmarks]
    parts = [write_benchmark_leaderboard(runs[runs["benchmark"] == bench], Path(out_dir), suffix)
             for bench, suffix in zip(benchmarks, suffixes)]
    markdown = "\n".join(p["markdown"] for p in parts)
    unfinished = [] if str(folder).startswith("wandb:") else jobs_without_results(folder)
    if unfinished:
        note = (f"\n**{len(unfinished)} job(s) without results** (failed, or still running): "
                + "; ".join(f"`{job}` ({' '.join(overrides)})" for job, overrides in unfinished) + "\n")
        markdown += note
        for suffix in suffixes:
            with open(Path(out_dir) / f"leaderboard{suffix}.md", "a") as f:
                f.write(note)
    return {"markdown": markdown, "runs": len(runs), "unfinished": [job for job, _ in unfinished],
            "correlations": [c for p in parts for c in p["correlations"]], "rows": [r for p in parts for r in p["rows"]]}


def distinguishing(jobs: list[list[str]]) -> list[list[str]]:
    """Each job's ``key=value`` overrides that not every job shares (what tells the jobs of a sweep apart)."""
    common = set.intersection(*(set(job) for job in jobs)) if jobs else set()
    return [[o for o in job if o not in common] for job in jobs]


def jobs_without_results(folder: str | Path) -> list[tuple[str, list[str]]]:
    """The job folders of a sweep (those with Hydra's ``.hydra/overrides.yaml``) that hold no ``metrics.json``:
    (folder relative to ``folder``, the overrides that tell it apart from the sweep's other jobs)."""
    folder = Path(folder)
    jobs = sorted((p.parent.parent for p in folder.rglob(".hydra/overrides.yaml") if p.parent.parent != folder),
                  key=lambda job: _natural(str(job.relative_to(folder))))
    overrides = distinguishing([OmegaConf.to_container(OmegaConf.load(job / ".hydra/overrides.yaml"))
                                for job in jobs])
    return [(str(job.relative_to(folder)), job_overrides) for job, job_overrides in zip(jobs, overrides)
            if not (job / "metrics.json").exists()]


def scatter_figure(runs: pd.DataFrame, metric: str, primary: str, corr: dict):
    """A metric (FAC, a text metric) against the primary benchmark metric over runs, one colour per strategy,
    titled with its correlation (``correlation``'s record): the leaderboard's PNG and the report's SVGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.4, 3.4))
    for strategy, group in runs.groupby("strategy"):
        ax.scatter(group[metric], group[f"benchmark/{primary}"], s=18, label=strategy)
    ax.set_xlabel(metric)
    ax.set_ylabel(primary)
    ax.set_title(f"Pearson r = {with_ci(corr['pearson_r'], corr['pearson_lo'], corr['pearson_hi'])}\n"
                 f"Spearman rho = {with_ci(corr['spearman_rho'], corr['spearman_lo'], corr['spearman_hi'])} "
                 f"({int(corr['points'])} runs)", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def write_benchmark_leaderboard(runs: pd.DataFrame, out: Path, suffix: str) -> dict:
    import matplotlib.pyplot as plt

    runs = runs.dropna(axis=1, how="all")  # another benchmark's metric columns
    table, corr, keys = leaderboard(runs), correlations(runs), swept_keys(runs)
    within = correlations(runs, within=keys) if keys else None
    bench, primary = benchmark_of(runs)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"leaderboard{suffix}.csv", index=False)
    corr.to_csv(out / f"correlations{suffix}.csv", index=False)
    examples = "/".join(str(e) for e in runs["examples"].drop_duplicates())
    tasks = ", ".join(str(t) for t in runs["task"].drop_duplicates())
    markdown = (f"Benchmark: {bench} ({examples} examples; task {tasks}), ranked by {primary}; mean ± std over seeds, "
                f"{len(runs)} runs.\n\n" + table.to_markdown(index=False) + "\n\n"
                + correlation_markdown(corr, primary))
    if within is not None and within[keys].drop_duplicates().shape[0] > 1:
        within.to_csv(out / f"correlations_within{suffix}.csv", index=False)
        markdown += "\n" + correlation_markdown(within, primary, keys)
    (out / f"leaderboard{suffix}.md").write_text(markdown)
    fig = scatter_figure(runs, "fac", primary, corr.set_index("metric").loc["fac"].to_dict())
    fig.savefig(out / f"fac_vs_{primary}{suffix}.png", dpi=120)
    plt.close(fig)
    return {"markdown": markdown, "correlations": corr.to_dict("records"), "rows": table.to_dict("records")}
