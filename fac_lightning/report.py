"""The sweep's report (``evaluate.py mode=report runs=<sweep folder>``): one self-contained HTML page, with no
network (no script, font or image from elsewhere; plots are inline SVG), that opens from ``file://``.

Sections, per benchmark of the sweep: the leaderboard (``leaderboard.leaderboard``: mean ± std over seeds, ranked by
the primary metric, with the trivial score: the base rate the benchmark recorded); one scatter per FAC variant and
per text metric against the primary metric, points coloured by strategy, titled with Pearson's r and Spearman's rho
and their 95 % intervals (``leaderboard.correlations``); then the first rows of each strategy's row sets, verbatim;
then each run's distinguishing overrides, stage timings and artifacts. Runs come from the ``metrics.json`` files
under the folder (the rows and runs sections need them; a W&B group gives the first two sections).
"""

import io
import json
from pathlib import Path

import jinja2
import pandas as pd

from fac_lightning.leaderboard import (
    benchmark_of,
    collect_runs,
    correlations,
    distinguishing,
    jobs_without_results,
    leaderboard,
)

ROWS_PER_STRATEGY = 10
TEMPLATE = Path(__file__).with_name("report.html.j2")


def svg(fig) -> str:
    """A matplotlib figure as inline SVG (text drawn as paths: no font is fetched)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def interval(value: float, lo: float, hi: float) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value:.2f}" + ("" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]")


def scatter(runs: pd.DataFrame, metric: str, primary: str, corr: dict) -> dict:
    """The scatter of ``metric`` against the primary metric, one colour per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.4, 3.4))
    for strategy, group in runs.groupby("strategy"):
        ax.scatter(group[metric], group[f"benchmark/{primary}"], s=18, label=strategy)
    ax.set_xlabel(metric)
    ax.set_ylabel(primary)
    pearson = interval(corr["pearson_r"], corr["pearson_lo"], corr["pearson_hi"])
    spearman = interval(corr["spearman_rho"], corr["spearman_lo"], corr["spearman_hi"])
    points = int(corr["points"])
    ax.set_title(f"Pearson r = {pearson}\nSpearman rho = {spearman} ({points} runs)", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return {"metric": metric, "pearson": pearson, "spearman": spearman, "points": points, "svg": svg(fig)}


def benchmark_section(runs: pd.DataFrame) -> dict:
    bench, primary = benchmark_of(runs)
    runs = runs.dropna(axis=1, how="all")
    table = leaderboard(runs)
    corr = correlations(runs).set_index("metric")
    plots = [scatter(runs, metric, primary, corr.loc[metric].to_dict()) for metric in corr.index
             if corr.loc[metric, "points"] >= 3 and runs[metric].nunique() > 1]
    base_rates = runs["base_rate"].dropna().unique() if "base_rate" in runs else []
    return {"name": bench, "primary": primary, "runs": len(runs),
            "examples": "/".join(str(e) for e in runs["examples"].drop_duplicates()),
            "trivial": f"{base_rates[0]:.3f}" if len(base_rates) == 1 else None,
            "table": table.to_html(index=False, classes="leaderboard", border=0), "plots": plots}


def first_rows(records: list[dict]) -> list[dict]:
    """The first rows of each strategy's row sets (seeds in order), without their provenance."""
    by_strategy: dict[str, list[str]] = {}
    for run in sorted(records, key=lambda r: (r["strategy"], r.get("seed") or 0)):
        rows = by_strategy.setdefault(run["strategy"], [])
        path = Path(run["synthetic"] or "") / "rows.jsonl"
        if len(rows) >= ROWS_PER_STRATEGY or not path.is_file():
            continue
        for line in path.read_text().splitlines()[: ROWS_PER_STRATEGY - len(rows)]:
            row = {k: v for k, v in json.loads(line).items() if k != "provenance"}
            rows.append(json.dumps(row, indent=1, ensure_ascii=False))
    return [{"strategy": s, "rows": rows} for s, rows in by_strategy.items()]


def write_report(folder: str | Path, out_dir: str | Path) -> Path:
    """``report.html`` in ``out_dir`` for the runs under ``folder`` (or a ``wandb:`` group); returns its path."""
    runs = collect_runs(folder)
    local = not str(folder).startswith("wandb:")
    files = sorted(Path(folder).rglob("metrics.json")) if local else []
    records = [{**json.loads(p.read_text()), "folder": str(p.parent.relative_to(folder))} for p in files]
    told_apart = distinguishing([list(r.get("overrides") or []) for r in records])
    details = [{"folder": r["folder"], "strategy": r["strategy"], "seed": r.get("seed"),
                "overrides": " ".join(o), "timings": ", ".join(f"{k} {v} s" for k, v in (r.get("timings_s") or {})
                                                              .items()),
                "synthetic": r.get("synthetic"), "model": r.get("model")} for r, o in zip(records, told_apart)]
    page = jinja2.Template(TEMPLATE.read_text(), autoescape=True).render(
        source=str(folder), runs=len(runs), benchmarks=[benchmark_section(runs[runs["benchmark"] == b])
                                                        for b in dict.fromkeys(runs["benchmark"])],
        rows=first_rows(records), details=details, local=local,
        unfinished=[f"{job} ({' '.join(o)})" for job, o in (jobs_without_results(folder) if local else [])])
    out = Path(out_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return out

