"""Leaderboard sources: metrics.json folders and W&B groups (the group a sweep logs to)."""

import json
from types import SimpleNamespace

import pytest
import wandb

from fac_lightning.config import sweep_group
from fac_lightning.leaderboard import collect_runs, leaderboard


def metrics(strategy: str, seed: int, auprc: float, fac: float) -> dict:
    return {"strategy": strategy, "seed": seed, "train_positives": 14, "fac": {"binary": fac},
            "benchmark": {"benchmark": "moderation", "auprc": auprc, "f1": 0.5, "precision": 0.6, "recall": 0.4,
                          "examples": 840}}


RUNS = [metrics("fac", 0, 0.70, 0.9), metrics("fac", 1, 0.60, 0.8), metrics("magpie", 0, 0.50, 0.4)]


class FakeApi:
    """wandb.Api's ``runs(path, filters)`` over runs logged the way the experiment logs them."""

    def runs(self, path, filters):
        assert path == "me/fac_lightning"
        logged = [SimpleNamespace(path=["me", "fac_lightning", f"r{i}"],
                                  config={"synthesis": {"strategy": m["strategy"]}, "seed": m["seed"],
                                          "benchmark": {"name": "moderation"}},
                                  summary={"train_positives": 14, "fac/binary": m["fac"]["binary"],
                                           **{f"benchmark/{k}": v for k, v in m["benchmark"].items()}})
                  for i, m in enumerate(RUNS)]
        return logged if filters == {"group": "2026-11-26_01-00-00"} else []


def test_wandb_group_and_folder_give_the_same_leaderboard(tmp_path, monkeypatch):
    for i, m in enumerate(RUNS):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(json.dumps(m))
    monkeypatch.setattr(wandb, "Api", FakeApi)
    from_wandb = leaderboard(collect_runs("wandb:me/fac_lightning/2026-11-26_01-00-00"))
    from_folder = leaderboard(collect_runs(tmp_path))
    assert from_wandb.to_dict("records") == from_folder.to_dict("records")
    assert from_folder.iloc[0].to_dict() == {"strategy": "fac", "seeds": 2, "AUPRC": "65.00 ± 7.07", "F1": "50.00 ± 0.00",
                                             "FAC": "85.00 ± 7.07", "positives": 14}
    with pytest.raises(FileNotFoundError, match="other"):
        collect_runs("wandb:me/fac_lightning/other")


def test_sweep_runs_share_a_wandb_group_and_single_runs_have_none():
    assert sweep_group("RunMode.MULTIRUN", "logs/experiment/multiruns/2026-11-26_01-00-00") == "2026-11-26_01-00-00"
    assert sweep_group("RunMode.RUN", "logs/experiment/multiruns/2026-11-26_01-00-00") is None
