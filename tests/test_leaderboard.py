"""Leaderboard: sources (metrics.json folders, W&B groups), grouping by strategy × swept keys, ranking by the
benchmark's primary metric, correlations with FAC and text diversity, and the written files."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import wandb
from scipy import stats

from fac_lightning.leaderboard import (
    collect_runs,
    correlations,
    jobs_without_results,
    leaderboard,
    run_record,
    swept_keys,
    write_leaderboard,
)


def metrics(strategy: str, seed: int, score: float, fac: float, overrides: list[str] = (), *,
            name: str = "toxicchat", primary: str = "auprc", text: dict | None = None,
            base_rate: float | None = None) -> dict:
    """A run's metrics.json, as the experiment writes it."""
    scores = ({"auprc": score, "f1": 0.5, "precision": 0.6, "recall": 0.4} if primary == "auprc"
              else {primary: score, "macro_f1": 1 - score})
    return {"task": "toxicity", "strategy": strategy, "seed": seed, "backbone": "smollm2_135m",
            "finetune": "classifier_head", "overrides": list(overrides), "train_rows": 1050 + seed,
            "synthetic": None, "model": "/m", "fac": {"binary": fac, "frequency": fac / 2, "magnitude": 0.9},
            "text": text if text is not None else {"distinct_1": 0.3, "distinct_2": 0.7, "self_bleu": 0.2,
                                                   "embedding_cosine_distance": None},
            "benchmark": {"name": name, "primary": primary, "examples": 840, "metrics": scores,
                          **({"base_rate": base_rate} if base_rate is not None else {})},
            "timings_s": {"synthesis": 1.0}}


def frame(*runs: dict) -> pd.DataFrame:
    return pd.DataFrame([run_record(run, f"run{i}") for i, run in enumerate(runs)])


def write_runs(folder, runs: list[dict]) -> None:
    for i, run in enumerate(runs):
        (folder / str(i)).mkdir(parents=True)
        (folder / str(i) / "metrics.json").write_text(json.dumps(run))


RUNS = [metrics("fac", 0, 0.70, 0.9, ["synthesis=fac", "seed=0"], base_rate=0.132),
        metrics("fac", 1, 0.60, 0.8, ["synthesis=fac", "seed=1"], base_rate=0.132),
        metrics("magpie", 0, 0.50, 0.4, ["synthesis=magpie", "seed=0"], base_rate=0.132)]


class FakeApi:
    """wandb.Api's ``runs(path, filters)`` over runs logged the way the experiment logs them: the resolved
    config plus a ``run`` key as hyperparams, ``fac/*``, ``text/*``, ``benchmark/*`` as summary metrics."""

    def runs(self, path, filters):
        assert path == "me/fac_lightning"
        logged = [SimpleNamespace(
            path=["me", "fac_lightning", f"r{i}"],
            config={"seed": m["seed"], "synthesis": {"strategy": m["strategy"], "temperature": 0.8},
                    "run": {"task": m["task"], "strategy": m["strategy"], "seed": m["seed"],
                            "overrides": m["overrides"], "benchmark": m["benchmark"]["name"],
                            "primary": m["benchmark"]["primary"], "examples": m["benchmark"]["examples"],
                            "base_rate": m["benchmark"].get("base_rate"), "train_rows": m["train_rows"]}},
            summary={"_runtime": 3.0, "timings_s/synthesis": 1.0,
                     **{f"fac/{k}": v for k, v in m["fac"].items()},
                     **{f"text/{k}": v for k, v in m["text"].items() if v is not None},
                     **{f"benchmark/{k}": v for k, v in m["benchmark"]["metrics"].items()}})
            for i, m in enumerate(RUNS)]
        crashed = SimpleNamespace(path=["me", "fac_lightning", "crashed"], config={"seed": 0}, summary={})
        return [*logged, crashed] if filters == {"group": "2026-11-26_01-00-00"} else []


def test_wandb_group_and_folder_give_the_same_leaderboard(tmp_path, monkeypatch):
    write_runs(tmp_path, RUNS)
    monkeypatch.setattr(wandb, "Api", FakeApi)
    runs_wandb = collect_runs("wandb:me/fac_lightning/2026-11-26_01-00-00")
    runs_folder = collect_runs(tmp_path)
    without_where = [runs.drop(columns="run").to_dict("records") for runs in (runs_wandb, runs_folder)]
    assert without_where[0] == without_where[1]
    from_wandb, from_folder = leaderboard(runs_wandb), leaderboard(runs_folder)
    assert from_wandb.to_dict("records") == from_folder.to_dict("records")
    assert from_folder.iloc[0].to_dict() == {"strategy": "fac", "seeds": 2, "auprc": "0.650 ± 0.071",
                                             "f1": "0.500 ± 0.000", "precision": "0.600 ± 0.000",
                                             "recall": "0.400 ± 0.000", "FAC": "0.850 ± 0.071",
                                             "FAC freq": "0.425 ± 0.035", "FAC mag": "0.900 ± 0.000",
                                             "train rows": 1050}
    assert list(from_folder.strategy) == ["fac", "magpie"]
    with pytest.raises(FileNotFoundError, match="other"):
        collect_runs("wandb:me/fac_lightning/other")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        collect_runs(tmp_path / "nothing-here")


def test_run_record_flattens_metrics_json():
    overrides = ["seed=3", "+synthesis.temperature=0.4", "~logger"]
    record = run_record(metrics("fac", 3, 0.27, 0.9, overrides), "r")
    assert record["benchmark"] == "toxicchat" and record["primary"] == "auprc" and record["examples"] == 840
    assert record["benchmark/auprc"] == 0.27 and record["fac"] == 0.9 and record["fac_frequency"] == 0.45
    assert record["text/distinct_2"] == 0.7 and math.isnan(record["text/embedding_cosine_distance"])
    assert record["overrides"] == {"seed": "3", "synthesis.temperature": "0.4", "logger": "(deleted)"}
    assert record["train_rows"] == 1053 and record["seed"] == 3 and record["task"] == "toxicity"


def test_temperature_sweep_groups_by_strategy_and_temperature():
    auprc = {"0.4": (0.30, 0.20), "0.8": (0.50, 0.46), "1.2": (0.10, 0.14)}
    runs = frame(*(metrics("fac", seed, auprc[t][seed], 0.5 + seed / 10,
                           ["experiment=x", "synthesis=fac", f"seed={seed}", f"synthesis.temperature={t}",
                            "hydra.job.chdir=true"])
                   for t in auprc for seed in (0, 1)))
    assert swept_keys(runs) == ["synthesis.temperature"]
    table = leaderboard(runs)
    assert list(table.columns[:3]) == ["strategy", "synthesis.temperature", "seeds"]
    assert table[["synthesis.temperature", "seeds", "auprc", "FAC"]].values.tolist() == [
        ["0.8", 2, "0.480 ± 0.028", "0.550 ± 0.071"],
        ["0.4", 2, "0.250 ± 0.071", "0.550 ± 0.071"],
        ["1.2", 2, "0.120 ± 0.028", "0.550 ± 0.071"]]
    assert (table.strategy == "fac").all()


def test_a_key_set_in_some_runs_only_is_swept_with_default_value():
    runs = frame(metrics("fac", 0, 0.55, 0.9, ["synthesis=fac", "synthesis.temperature=0.4"]),
                 metrics("magpie", 0, 0.5, 0.4, ["synthesis=magpie"]),
                 metrics("magpie", 1, 0.7, 0.4, ["synthesis=magpie", "seed=1"]))
    assert swept_keys(runs) == ["synthesis.temperature"]
    table = leaderboard(runs)
    assert table[["strategy", "synthesis.temperature", "seeds", "auprc"]].values.tolist() == [
        ["magpie", "(default)", 2, "0.600 ± 0.141"], ["fac", "0.4", 1, "0.550 ± 0.000"]]
    assert swept_keys(frame(metrics("fac", 0, 0.6, 0.9))) == []
    mixed = frame(metrics("fac", 0, 0.6, 0.9, ["experiment=a", "synthesis=fac", "hydra.job.chdir=true",
                                               "hydra/launcher=basic", "k=1"]),
                  metrics("magpie", 1, 0.5, 0.4, ["experiment=b", "synthesis=magpie", "seed=1", "k=1"]))
    assert swept_keys(mixed) == [] and len(leaderboard(mixed)) == 2


def test_ranks_by_the_primary_metric_of_any_benchmark():
    runs = frame(metrics("fac", 0, 0.61, 0.9, name="sst2", primary="accuracy"),
                 metrics("magpie", 0, 0.83, 0.4, name="sst2", primary="accuracy"),
                 metrics("none", 0, -0.20, 0.1, name="sst2", primary="accuracy"))
    table = leaderboard(runs)
    assert list(table.strategy) == ["magpie", "fac", "none"]  # macro_f1 (1 - accuracy) ranks the other way
    assert list(table.columns) == ["strategy", "seeds", "accuracy", "macro_f1", "FAC", "FAC freq", "FAC mag",
                                   "train rows"]
    assert table.accuracy.tolist() == ["0.830 ± 0.000", "0.610 ± 0.000", "-0.200 ± 0.000"]


@pytest.mark.filterwarnings("error")  # constant and short inputs are caught, not left to scipy's warnings
def test_correlations_match_scipy_and_are_nan_when_undefined():
    fac, score, distinct = [0.2, 0.5, 0.4, 0.9, 0.7], [0.1, 0.3, 0.35, 0.8, 0.4], [0.5, 0.1, 0.3, 0.2, 0.9]
    runs = frame(*(metrics("fac", i, s, f, text={"distinct_2": d, "self_bleu": 0.2, "entropy_2": None})
                   for i, (f, s, d) in enumerate(zip(fac, score, distinct, strict=True))))
    corr = correlations(runs).set_index("metric")
    assert list(corr.index) == ["fac", "fac_frequency", "fac_magnitude", "text/distinct_2", "text/self_bleu",
                                "text/entropy_2"]
    assert corr.loc["fac", "pearson_r"] == pytest.approx(stats.pearsonr(fac, score)[0])
    assert corr.loc["fac", "spearman_rho"] == pytest.approx(stats.spearmanr(fac, score)[0])
    assert corr.loc["fac_frequency", "pearson_r"] == pytest.approx(stats.pearsonr(fac, score)[0])  # fac / 2
    assert corr.loc["text/distinct_2", "pearson_r"] == pytest.approx(stats.pearsonr(distinct, score)[0])
    assert corr.loc["text/distinct_2", "spearman_rho"] == pytest.approx(stats.spearmanr(distinct, score)[0])
    assert corr.loc["fac", "points"] == 5
    for constant in ("fac_magnitude", "text/self_bleu"):  # the same value in every run
        assert math.isnan(corr.loc[constant, "pearson_r"]) and math.isnan(corr.loc[constant, "spearman_rho"])
    assert corr.loc["text/entropy_2", "points"] == 0 and math.isnan(corr.loc["text/entropy_2", "pearson_r"])
    two = correlations(runs.iloc[:2]).set_index("metric")
    assert two.loc["fac", "points"] == 2 and math.isnan(two.loc["fac", "pearson_r"])


def test_correlation_intervals_and_the_partial_correlation_given_length():
    rng = np.random.default_rng(0)
    tokens = rng.uniform(10, 60, 40)
    fac = tokens / 60 + rng.normal(0, 0.05, 40)  # coverage that is row length and nothing else
    score = 0.1 + tokens / 200 + rng.normal(0, 0.02, 40)
    runs = frame(*(metrics("select", i, s, f, text={"mean_tokens": t}) for i, (f, s, t) in
                   enumerate(zip(fac, score, tokens, strict=True))))
    row = correlations(runs).set_index("metric").loc["fac"]
    low, high = stats.pearsonr(fac, score).confidence_interval(0.95)
    assert (row.pearson_lo, row.pearson_hi) == (pytest.approx(low), pytest.approx(high))
    assert row.pearson_r > 0.8 and row.spearman_lo < row.spearman_rho < row.spearman_hi
    residual = [np.polynomial.polynomial.Polynomial.fit(tokens, v, 1) for v in (fac, score)]
    expected = np.corrcoef(fac - residual[0](tokens), score - residual[1](tokens))[0, 1]
    assert row.partial_r == pytest.approx(expected) and row.partial_lo < 0 < row.partial_hi  # length explains it
    length = correlations(runs).set_index("metric").loc["text/mean_tokens"]
    assert length.pearson_r > 0.8 and math.isnan(length.partial_r)


def test_correlations_within_each_budget(tmp_path):
    runs = [metrics(s, seed, 0.1 * seed + (0.3 if s == "select_fac" else 0.1) + n / 1000, f + n / 1000,
                    [f"synthesis={s}", f"n_samples={n}", f"seed={seed}"], text={"mean_tokens": 20 + seed})
            for n in (10, 50) for s, f in (("select_fac", 0.9), ("select_anti", 0.3)) for seed in (0, 1)]
    within = correlations(frame(*runs), within=["n_samples"])
    assert within.n_samples.unique().tolist() == ["10", "50"] and within.points.unique().tolist() == [4]
    write_runs(tmp_path / "runs", runs)
    markdown = write_leaderboard(tmp_path / "runs", tmp_path / "board")["markdown"]
    assert "Pearson r [95% CI] with auprc, within each n_samples (columns" in markdown
    header = markdown.split("within each n_samples")[1].split("\n")[2]
    assert [cell.strip() for cell in header.split("|")[2:4]] == ["10", "50"]  # one column per budget, in order
    assert (tmp_path / "board" / "correlations_within.csv").exists()
    assert "tokens/row" in markdown


def test_mixing_benchmarks_raises():
    runs = frame(metrics("fac", 0, 0.6, 0.9), metrics("fac", 0, 0.6, 0.9, name="sst2", primary="accuracy"))
    with pytest.raises(ValueError, match="sst2.*toxicchat|toxicchat.*sst2"):
        leaderboard(runs)
    with pytest.raises(ValueError, match="mix benchmarks"):
        correlations(runs)


def test_write_leaderboard_writes_table_markdown_and_plot(tmp_path):
    base = {"fac": (0.5, 0.4), "magpie": (0.3, 0.2)}  # (auprc, FAC) at seed 0
    runs = [metrics(s, seed, 0.1 * seed + base[s][0], 0.3 * seed + base[s][1],
                    [f"synthesis={s}", f"seed={seed}"]) for s in base for seed in (0, 1)]
    write_runs(tmp_path / "runs", runs)
    result = write_leaderboard(tmp_path / "runs", tmp_path / "board")
    board = tmp_path / "board"
    assert pd.read_csv(board / "leaderboard.csv").strategy.tolist() == ["fac", "magpie"]
    markdown = (board / "leaderboard.md").read_text()
    assert markdown == result["markdown"]
    assert markdown.startswith("Benchmark: toxicchat (840 examples; task toxicity), ranked by auprc")
    assert "| fac " in markdown and "text/distinct_2" in markdown and "Pearson r [95% CI]" in markdown
    assert (board / "fac_vs_auprc.png").stat().st_size > 1000
    assert result["runs"] == 4 and [r["strategy"] for r in result["rows"]] == ["fac", "magpie"]
    fac = next(c for c in result["correlations"] if c["metric"] == "fac")
    assert fac["points"] == 4 and fac["pearson_r"] == pytest.approx(stats.pearsonr(
        [r["fac"]["binary"] for r in runs], [r["benchmark"]["metrics"]["auprc"] for r in runs])[0])


def test_a_sweep_over_tasks_gets_one_table_per_benchmark(tmp_path):
    runs = [metrics("fac", 0, 0.3, 0.9), metrics("fac", 0, 0.6, 0.8, name="hh_pairs", primary="accuracy")]
    runs[1]["task"] = "reward"
    write_runs(tmp_path / "runs", runs)
    result = write_leaderboard(tmp_path / "runs", tmp_path / "board")
    tables = result["markdown"].split("Benchmark: ")[1:]
    assert [t.split(" (")[0] for t in tables] == ["toxicchat", "hh_pairs"]
    assert "task reward), ranked by accuracy" in tables[1] and "auprc" not in tables[1]
    assert pd.read_csv(tmp_path / "board" / "leaderboard_hh_pairs.csv").strategy.tolist() == ["fac"]


def test_a_correlation_needs_three_runs_to_be_printed(tmp_path):
    write_runs(tmp_path / "runs", RUNS[:2])
    markdown = write_leaderboard(tmp_path / "runs", tmp_path / "board")["markdown"]
    assert "No correlation with auprc: fewer than 3 runs share a metric." in markdown and "Pearson" not in markdown


def test_a_partial_sweep_names_its_jobs_without_results(tmp_path):
    """What ``evaluate.py mode=leaderboard`` and the sweeper write for a sweep with a failed (or running) job: the
    finished runs' table, then the job without metrics.json, named by the overrides that tell it apart."""
    write_runs(tmp_path / "sweep", RUNS)
    for i, overrides in enumerate([*(run["overrides"] for run in RUNS), ["synthesis=magpie", "seed=1"]]):
        (tmp_path / "sweep" / str(i) / ".hydra").mkdir(parents=True, exist_ok=True)
        (tmp_path / "sweep" / str(i) / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in ["experiment=demo", *overrides]))
    assert jobs_without_results(tmp_path / "sweep") == [("3", ["synthesis=magpie", "seed=1"])]
    result = write_leaderboard(tmp_path / "sweep", tmp_path / "board")
    assert result["runs"] == 3 and result["unfinished"] == ["3"]
    note = "**1 job(s) without results** (failed, or still running): `3` (synthesis=magpie seed=1)"
    assert note in result["markdown"] and note in (tmp_path / "board" / "leaderboard.md").read_text()
