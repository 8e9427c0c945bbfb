"""The G-Vendi stage: measured once per row set (the seeds of a real-data set and a throughput knob share it, other
gradient settings do not), a disabled metric leaves the leaderboard's column out, and the leaderboard correlates it."""

import json

import pandas as pd

from fac_lightning.leaderboard import correlations, leaderboard, run_record
from fac_lightning.stages.experiment import run_experiment
from tests.stages.test_experiment import chain_config


def g_vendi_folders(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "artifacts" / "g_vendi").iterdir() if p.is_dir())


def test_a_row_set_is_measured_once_and_read_by_every_run_on_it(tiny_llama_dir, tmp_path):
    scores = [run_experiment(chain_config(tiny_llama_dir, tmp_path, "synthesis=full_dataset", *extra))["g_vendi"]
              for extra in ([], ["seed=1"], ["g_vendi.batch_rows=3"])]
    assert len(g_vendi_folders(tmp_path)) == 1 and scores[0] == scores[1] == scores[2] > 1
    other = run_experiment(chain_config(tiny_llama_dir, tmp_path, "synthesis=full_dataset", "g_vendi.dim=16"))
    assert len(g_vendi_folders(tmp_path)) == 2 and other["g_vendi"] != scores[0]
    saved = json.loads(next((tmp_path / "artifacts" / "g_vendi").glob("*/g_vendi.json")).read_text())
    assert saved["measured_rows"] > 0 and "batch_rows" not in saved["config"]


def test_disabled_g_vendi_is_left_out_of_the_run_and_the_leaderboard(tiny_llama_dir, tmp_path):
    result = run_experiment(chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", "g_vendi.enabled=false"))
    assert result["g_vendi"] is None and not (tmp_path / "artifacts" / "g_vendi").exists()
    runs = pd.DataFrame([run_record(result, "run")])
    assert "G-Vendi" not in leaderboard(runs) and "g_vendi" not in set(correlations(runs).metric)


def test_the_leaderboard_correlates_g_vendi_with_the_benchmark():
    runs = pd.DataFrame([run_record({"strategy": s, "seed": 0, "g_vendi": v, "fac": {"binary": f},
                                     "benchmark": {"name": "b", "primary": "m", "metrics": {"m": m}}}, s)
                         for s, v, f, m in [("a", 2.0, 0.1, 0.2), ("b", 3.0, 0.3, 0.3), ("c", 5.0, 0.2, 0.5)]])
    table, corr = leaderboard(runs), correlations(runs).set_index("metric")
    assert list(table["G-Vendi"]) == ["5.00 ± 0.00", "3.00 ± 0.00", "2.00 ± 0.00"]
    assert corr.loc["g_vendi", "points"] == 3 and corr.loc["g_vendi", "spearman_rho"] == 1.0
