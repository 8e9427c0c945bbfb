"""Which artifacts a sweep shares, read from the folders it made: a tiny sweep over backbone dtype x delta x temperature
x seed on the whole chain makes one SAE per dtype, one anchor and one seed table per SAE, one relevance selection per
(SAE, delta), one row set per job, and one finetune per distinct training set; a second pass with every throughput
knob changed makes nothing new."""

import itertools
import json
from pathlib import Path

import pytest

from fac_lightning.stages.experiment import run_experiment
from tests.stages.test_experiment import chain_config

DTYPES, DELTAS, TEMPERATURES, SEEDS = ("float32", "bfloat16"), (0.0, 0.03), (0.7, 1.0), (0, 1)
THROUGHPUT = ["features.batch_size=3", "features.chunk_size=7", "sae.val_every_steps=999",
              "finetune.inference_batch_size=5", "finetune.checkpoint_every_n_steps=3", "g_vendi.batch_rows=2",
              "g_vendi.chunk=999"]


def listing(artifacts: Path) -> dict[str, list[str]]:
    """The finished artifact folders, by kind."""
    return {kind.name: sorted(p.name for p in kind.iterdir() if p.is_dir() and "." not in p.name)
            for kind in sorted(artifacts.iterdir())}


def rows_of(folder: str) -> list[dict]:
    """A row set's rows as a finetune trains on them (without their provenance)."""
    rows = [json.loads(line) for line in Path(folder, "rows.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "provenance"} for row in rows]


@pytest.mark.slow
def test_a_sweep_shares_exactly_what_its_jobs_have_in_common(tiny_llama_dir, tmp_path):
    jobs = list(itertools.product(DTYPES, DELTAS, TEMPERATURES, SEEDS))

    def run(dtype, delta, temperature, seed, *extra):
        return run_experiment(chain_config(
            tiny_llama_dir, tmp_path, "synthesis=fac", "synthesis.feature_ratio=0.01", "synthesis.n=1",
            "synthesis.m=1", "n_samples=2", "g_vendi.dim=16", "benchmark.limit=8", "task.background_rows=4",
            "finetune.epochs=1", f"backbone.dtype={dtype}", f"features.delta={delta}",
            f"synthesis.temperature={temperature}", f"seed={seed}", *extra))

    results = [run(*job) for job in jobs]
    made = listing(tmp_path / "artifacts")
    print(json.dumps({kind: len(folders) for kind, folders in made.items()}), json.dumps(made, indent=1))
    assert len(made["sae"]) == len(DTYPES)
    tables = made["features"]
    assert sum(t.startswith("toxicity-anchor-") for t in tables) == len(DTYPES)
    assert sum(t.startswith("toxicity-seed-") for t in tables) == len(DTYPES)
    assert len(made["relevance"]) == len(DTYPES) * len(DELTAS)
    assert len(made["synthetic"]) == len(jobs) == len({r["synthetic"] for r in results})
    assert len(made["g_vendi"]) == len(jobs)
    # a finetune is named by what it trains on: one per distinct (dtype, rows with the seed's background, seed)
    trained_on = {(dtype, json.dumps(rows_of(r["synthetic"])), seed)  # the background is drawn by seed
                  for (dtype, _, _, seed), r in zip(jobs, results)}
    assert len(made["finetune"]) == len(trained_on) == len({r["model"] for r in results})

    for job in jobs[:2]:  # the same jobs with every throughput knob changed: nothing is built again
        assert run(*job, *THROUGHPUT)["model"] in {r["model"] for r in results}
    assert listing(tmp_path / "artifacts") == made
