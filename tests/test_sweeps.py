"""``python train.py -m`` with fac_lightning's sweeper (``hydra_plugins/fac_lightning_sweeper``): the shared upstream
artifacts are built once by the launching process before parallel jobs start, a joblib sweep ranks the strategies
exactly as the sequential sweep does, and a failed job leaves the others' leaderboard written and is named."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, train_command, train_env

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Every process computes with one thread, so that a job gives the same numbers in a joblib worker as in-process."""


def sweep(tiny_llama_dir, folder: Path, *overrides: str, sweep_dir: bool = True) -> subprocess.CompletedProcess:
    """``python train.py -m`` on the tiny chain, into ``folder/sweep`` (or, ``sweep_dir=False``, the default folder
    under ``PROJECT_ROOT=folder``, as a user's sweep goes)."""
    command = train_command(tiny_llama_dir, folder / "artifacts", *overrides,
                            *([f"hydra.sweep.dir={folder / 'sweep'}"] if sweep_dir else []))
    command.insert(2, "-m")  # before the overrides: Hydra's argument parser takes flags first
    return subprocess.run(command, cwd=ROOT, env=train_env({**ONE_THREAD, "PROJECT_ROOT": str(folder)}),
                          capture_output=True, text=True, timeout=1200, check=False)


def job_logs(folder: Path) -> str:
    return "".join(path.read_text() for path in sorted((folder / "sweep").glob("*/train.log")))


def ranked(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "sweep" / "leaderboard.csv")
    return table.drop(columns=[c for c in table.columns if c in ("run", "runs")])


@pytest.mark.slow
def test_a_joblib_sweep_builds_each_shared_artifact_once_and_ranks_as_the_sequential_sweep(tiny_llama_dir, tmp_path):
    grid = ("synthesis.m=1,2", "seed=0,1")  # four fac jobs on one SAE, feature space and seed table
    parallel = sweep(tiny_llama_dir, tmp_path / "joblib", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *grid)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    artifacts, jobs = tmp_path / "joblib" / "artifacts", job_logs(tmp_path / "joblib")
    launcher = parallel.stdout + parallel.stderr  # the launching process logs to the console
    assert len([p for p in (artifacts / "sae").iterdir() if p.is_dir()]) == 1
    for table in ("toxicity-anchor", "toxicity-seed"):
        assert len([p for p in (artifacts / "features").glob(f"{table}-*") if p.is_dir()]) == 1
        assert (launcher + jobs).count(f"scored feature table of {table}:") == 1
        assert f"scored feature table of {table}:" in launcher  # by the launching process, before the jobs
    assert (launcher + jobs).count("SAE trained:") == 1 and "SAE trained:" in launcher
    assert "waiting for it" not in jobs  # no job waited on another's lock
    assert len(list((tmp_path / "joblib" / "sweep").glob("*/metrics.json"))) == 4

    sequential = sweep(tiny_llama_dir, tmp_path / "basic", *grid)
    assert sequential.returncode == 0, sequential.stderr[-3000:]
    pd.testing.assert_frame_equal(ranked(tmp_path / "joblib"), ranked(tmp_path / "basic"))


def test_a_failed_job_leaves_the_leaderboard_of_the_others_and_is_named(tiny_llama_dir, tmp_path):
    # W&B (offline) and the default sweep folder: the shared artifacts are built with what a job's config reads
    done = sweep(tiny_llama_dir, tmp_path, "finetune.epochs=2,0", "logger=wandb", sweep_dir=False)
    assert done.returncode != 0
    assert "1 of 2 sweep jobs failed" in done.stderr and "#1 (finetune.epochs=0)" in done.stderr
    assert "finetune.epochs" in done.stderr.split("#1 (")[1]  # the job's own error
    (folder,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    board = (folder / "leaderboard.md").read_text()
    assert "1 job(s) without results" in board and "`1` (finetune.epochs=0)" in board
    assert len(pd.read_csv(folder / "leaderboard.csv")) == 1
    assert "without results (failed, or still running): 1 (finetune.epochs=0)" in (folder / "report.html").read_text()
    (logged,) = folder.glob("wandb/offline-run-*/files/media/html/report_*.html")  # the page, in the W&B group
    assert "<h1>Sweep report</h1>" in logged.read_text()
