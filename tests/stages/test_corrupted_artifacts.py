"""A truncated file in each kind of artifact (SAE weights, a feature table, a rows file, a finetuned model) is
detected when the chain or a loader reads it: the cheap, deterministic kinds are rebuilt (and give the same result),
the expensive ones are refused with the file named and how to rebuild them; none is used silently."""

import json
import shutil
from pathlib import Path

import pytest

from fac_lightning import artifacts
from fac_lightning.artifacts import ArtifactError
from fac_lightning.stages.experiment import run_experiment
from tests.stages.test_experiment import chain_config

FAC = ["synthesis=fac", "synthesis.feature_ratio=0.01", "synthesis.n=2", "synthesis.m=2"]


@pytest.fixture(scope="module")
def finished(tiny_llama_dir, tmp_path_factory):
    """One finished fac chain (generative rows) on the tiny Llama: its artifacts and its result."""
    root = tmp_path_factory.mktemp("finished")
    return root / "artifacts", run_experiment(chain_config(tiny_llama_dir, root, *FAC))


@pytest.fixture
def copy(finished, tiny_llama_dir, tmp_path):
    """A copy of the finished chain's artifacts and the config that reads them (each test damages its own)."""
    shutil.copytree(finished[0], tmp_path / "artifacts")
    artifacts._VERIFIED.clear()  # as a new process would
    return tmp_path / "artifacts", chain_config(tiny_llama_dir, tmp_path, *FAC), finished[1]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_truncated_sae_weights_are_refused_naming_the_file(copy, tiny_llama_dir, tmp_path):
    from fac_lightning.sae.topk import load_sae

    folder, _, _ = copy
    sae_dir = only(folder / "sae", "tiny_llama-L2-*[!k]")  # not the .lock file
    truncate(sae_dir / "sae.safetensors")
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only")  # new rows: the feature space is read
    with pytest.raises(ArtifactError, match=rf"SAE artifact {sae_dir} is corrupted and was not used: sae.safetensors: "
                                            rf"\d+ bytes, \d+ expected \(truncated or altered\). Training an SAE"):
        run_experiment(cfg)
    with pytest.raises(ArtifactError, match="sae.safetensors"):
        load_sae(sae_dir)


def test_a_truncated_feature_table_is_rebuilt_and_gives_the_same_table(copy, finished, tiny_llama_dir, tmp_path,
                                                                       caplog):
    import numpy as np

    from fac_lightning.features.table import FeatureTable

    folder = copy[0]
    table_dir = only(folder / "features", "toxicity-anchor-*[!k]")
    truncate(table_dir / "table.npz")
    with pytest.raises(ArtifactError, match="table.npz"):
        FeatureTable.load(table_dir)
    run_experiment(chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only"))  # new rows: the table is read
    assert f"feature table of toxicity-anchor {table_dir} is corrupted (table.npz:" in caplog.text
    assert (table_dir.parent / f"{table_dir.name}.corrupt").exists() and not list(folder.rglob("*.partial"))
    rebuilt, original = FeatureTable.load(table_dir), FeatureTable.load(finished[0] / "features" / table_dir.name)
    for key in ("sample_idx", "feature_idx", "score"):
        np.testing.assert_array_equal(getattr(rebuilt, key), getattr(original, key))


def test_a_truncated_rows_file_of_sampled_rows_is_refused_naming_it(copy):
    from fac_lightning.stages.synthesis import read_row_set

    folder, cfg, _ = copy
    rows_dir = only(folder / "synthetic", "toxicity-fac-*[!k]")
    truncate(rows_dir / "rows.jsonl")
    with pytest.raises(ArtifactError, match=rf"row set {rows_dir} is corrupted and was not used: rows.jsonl: \d+ "
                                            r"bytes, \d+ expected .*were sampled from the generator"):
        run_experiment(cfg)
    with pytest.raises(ArtifactError, match="rows.jsonl"):
        read_row_set(rows_dir)


def test_a_truncated_rows_file_of_real_rows_is_rebuilt(tiny_llama_dir, tmp_path):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", "finetune.epochs=1")
    before = run_experiment(cfg)
    rows = Path(before["synthetic"]) / "rows.jsonl"
    truncate(rows)
    artifacts._VERIFIED.clear()
    after = run_experiment(cfg)
    assert after["strategy_rows"] == before["strategy_rows"] == len(rows.read_text().splitlines())
    assert after["benchmark"]["metrics"] == before["benchmark"]["metrics"]


def test_a_truncated_finetuned_model_is_refused_naming_the_file(copy):
    from fac_lightning.finetune.base import load_model
    from tests.conftest import CACHE_DIR

    folder, cfg, _ = copy
    model_dir = only(folder / "finetune", "toxicity-classifier_head-*[!k]")
    truncate(model_dir / "head.safetensors")
    with pytest.raises(ArtifactError, match=rf"finetuned model {model_dir} is corrupted and was not used: "
                                            r"head.safetensors: \d+ bytes"):
        run_experiment(cfg)
    with pytest.raises(ArtifactError, match="head.safetensors"):
        load_model(model_dir, CACHE_DIR)
    assert json.loads((model_dir / "model.json").read_text())["kind"] == "classifier_head"  # nothing was rewritten
