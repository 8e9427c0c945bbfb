"""The sweep's report (``evaluate.py mode=report runs=<sweep folder>``): one self-contained HTML page, with no
network (no script, font or image from elsewhere; plots are inline SVG), that opens from ``file://``.

Sections, per benchmark of the sweep: the leaderboard (``leaderboard.leaderboard``: mean ± std over seeds, ranked by
the primary metric, with the trivial score: the base rate the benchmark recorded); one scatter per FAC variant and
per text metric against the primary metric, points coloured by strategy, titled with Pearson's r and Spearman's rho
and their 95 % intervals (``leaderboard.correlations``); then the first rows of each strategy's row sets, verbatim;
then each run's distinguishing overrides, stage timings and artifacts. Runs come from the ``metrics.json`` files
under the folder (the rows and runs sections need them; a W&B group gives the first two sections). A sweep logged
to W&B also gets the page in its group (``log_report_to_wandb``).
"""

import io
import json
from itertools import islice
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from fac_lightning.files import read_json, read_rows
from fac_lightning.leaderboard import (
    benchmark_of,
    collect_runs,
    correlations,
    distinguishing,
    jobs_without_results,
    leaderboard,
    scatter_figure,
    with_ci,
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


def scatter(runs: pd.DataFrame, metric: str, primary: str, corr: dict) -> dict:
    return {"metric": metric, "points": int(corr["points"]), "svg": svg(scatter_figure(runs, metric, primary, corr)),
            "pearson": with_ci(corr["pearson_r"], corr["pearson_lo"], corr["pearson_hi"]),
            "spearman": with_ci(corr["spearman_rho"], corr["spearman_lo"], corr["spearman_hi"])}


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
        for row in islice(read_rows(path), ROWS_PER_STRATEGY - len(rows)):
            rows.append(json.dumps({k: v for k, v in row.items() if k != "provenance"}, indent=1, ensure_ascii=False))
    return [{"strategy": s, "rows": rows} for s, rows in by_strategy.items()]


MISSING_SHOWN = 60
"""Missing features drawn in the coverage chart and given a card (the most frequent on the anchor first)."""


SPANS_SHOWN = 5
"""Top-activating anchor spans per feature card."""


def card_span(span) -> dict:
    """A span as a card shows it: its score and text, and (tables that kept them) its tokens, each with its share of
    the span's highest activation, which shades it."""
    tokens = getattr(span, "tokens", None)  # tables scored before SCORER_VERSION 3 have none
    top = max((act for _, act in tokens), default=0.0) if tokens else 0.0
    return {"score": round(span.score, 2), "text": " ".join(span.text.split()),
            "tokens": [(piece, round(max(act, 0.0) / top, 2) if top > 0 else 0.0, act) for piece, act in tokens]
            if tokens else None}


def coverage_section(task_records: list[dict]) -> dict:
    """Which of the task's missing relevant features (F(anchor) ∩ R \\ F(seed), most frequent on the anchor first)
    each strategy's rows activate, from the artifacts the runs used (the feature space, each row set's table); and a
    card per shown feature (relevance evidence, top-activating anchor spans with each token shaded by its
    activation)."""
    from fac_lightning.config import saved_config
    from fac_lightning.plan import plan
    from fac_lightning.stages.feature_space import build_feature_space
    from fac_lightning.stages.synthesis import read_row_set

    def row_set_plan(folder: Path):
        return plan(saved_config(read_json(folder / "manifest.json")["config"]))

    first = row_set_plan(Path(task_records[0]["synthetic"]))
    space = build_feature_space(first)
    missing = space.missing(space.table(first.seed_table.label, first.seed_conversations))
    covered: dict[str, list[np.ndarray]] = {}
    for record in task_records:  # per run: seeds may share a row set (real data)
        folder = Path(record["synthetic"])
        strategy = row_set_plan(folder).strategy
        rows = [r for r in read_row_set(folder) if strategy.format.measured(r, strategy.task.label)]
        conversations = [strategy.format.scored(r) for r in rows]
        active = (space.table(f"{first.task.name}-{strategy.name}", conversations).active(space.delta)
                  if conversations else np.zeros(space.anchor.num_features, dtype=bool))
        covered.setdefault(record["strategy"], []).append(active[missing])
    shares = {s: np.mean(a, axis=0) for s, a in covered.items()}  # per missing feature: share of the runs
    shown = missing[:MISSING_SHOWN]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(shares)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(names) + 1.4))
    ax.imshow(np.stack([shares[s][: len(shown)] for s in names]), aspect="auto", cmap="Greens", vmin=0, vmax=1)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xticks(range(len(shown)), [str(f) for f in shown], rotation=90, fontsize=5)
    ax.set_xlabel(f"the {len(shown)} most frequent of the {len(missing)} missing features (id, by anchor frequency); "
                  "shade: share of the strategy's runs whose rows activate it", fontsize=7)
    fig.tight_layout()
    counts = [{"strategy": s, "covered": f"{np.mean([a.sum() for a in covered[s]]):.1f}", "runs": len(covered[s])}
              for s in names]
    cards = [{"feature": int(f), "record": space.records.get(int(f), {}),
              "covered_by": [s for s in names if shares[s][i] > 0],
              "spans": [card_span(span) for span in space.anchor.spans.get(int(f), [])[:SPANS_SHOWN]]}
             for i, f in enumerate(shown)]
    return {"task": first.task.name, "missing": len(missing), "svg": svg(fig), "counts": counts, "cards": cards}


def coverage_sections(records: list[dict]) -> list[dict]:
    """One coverage section per task of the sweep; a task whose artifacts cannot be read gets the reason instead."""
    sections = []
    for task in dict.fromkeys(r.get("task") for r in records):
        task_records = [r for r in records if r.get("task") == task and r.get("synthetic")]
        try:
            sections.append(coverage_section(task_records))
        except (OSError, KeyError, ValueError) as e:  # an artifact deleted or from an older layout
            sections.append({"task": task, "error": f"{type(e).__name__}: {e}"})
    return sections


def log_report_to_wandb(report: Path, project: str, group: str, offline: bool, entity: str | None = None) -> None:
    """The page as ``wandb.Html`` in a run of the sweep's W&B group (job type ``report``), its files beside the
    page (offline: ``<sweep>/wandb/``, for ``wandb sync``)."""
    import wandb

    run = wandb.init(project=project, entity=entity, group=group, job_type="report", name=f"report-{group}",
                     dir=str(report.parent), mode="offline" if offline else "online", reinit="finish_previous")
    run.log({"report": wandb.Html(report.read_text())})
    run.finish()


def write_report(folder: str | Path, out_dir: str | Path) -> Path:
    """``report.html`` in ``out_dir`` for the runs under ``folder`` (or a ``wandb:`` group); returns its path."""
    runs = collect_runs(folder)
    local = not str(folder).startswith("wandb:")
    files = sorted(Path(folder).rglob("metrics.json")) if local else []
    records = [{**read_json(p), "folder": str(p.parent.relative_to(folder))} for p in files]
    told_apart = distinguishing([list(r.get("overrides") or []) for r in records])
    details = [{"folder": r["folder"], "strategy": r["strategy"], "seed": r.get("seed"),
                "overrides": " ".join(o), "timings": ", ".join(f"{k} {v} s" for k, v in (r.get("timings_s") or {})
                                                              .items()),
                "synthetic": r.get("synthetic"), "model": r.get("model")} for r, o in zip(records, told_apart)]
    page = jinja2.Template(TEMPLATE.read_text(), autoescape=True).render(
        source=str(folder), runs=len(runs), benchmarks=[benchmark_section(runs[runs["benchmark"] == b])
                                                        for b in dict.fromkeys(runs["benchmark"])],
        rows=first_rows(records), details=details, local=local, coverage=coverage_sections(records),
        unfinished=[f"{job} ({' '.join(o)})" for job, o in (jobs_without_results(folder) if local else [])])
    out = Path(out_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return out

