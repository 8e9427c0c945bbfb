"""The run plan names every artifact from what it is built from: throughput knobs change no name, a resolved dtype
is what keys hold, and each stage's name follows its upstream's."""

import pytest

from fac_lightning.plan import plan, resolved_dtype
from tests.conftest import compose_config, tiny_config

THROUGHPUT = ["features.batch_size=3", "features.chunk_size=5",
              "sae.val_every_steps=7", "sae.checkpoint_every_steps=9", "finetune.inference_batch_size=3",
              "finetune.checkpoint_every_n_steps=4", "g_vendi.batch_rows=3", "g_vendi.chunk=1000",
              "backbone.trust_remote_code=true"]


def names(*overrides: str) -> dict[str, str]:
    """Every stage's folder name for a toxicity run with ``overrides`` (the real data, no model loaded)."""
    cfg = compose_config(["synthesis=fac", *overrides])
    run = plan(cfg)
    rows = run.rows()
    return {"sae": run.sae.name, "anchor": run.anchor.name, "seed": run.seed_table.name, "relevant": run.relevant.name,
            "rows": rows.name, "g_vendi": run.g_vendi(rows.name).name}


def test_a_throughput_knob_changes_no_artifact_name():
    base = names()
    for override in THROUGHPUT:
        assert names(override) == base, override


@pytest.mark.parametrize("override, first_changed", [
    ("sae.k=16", "sae"), ("backbone.dtype=float16", "sae"), ("activations.max_length=128", "sae"),
    ("activations.text_batch_size=8", "sae"),  # it groups the sequences that are shuffled: another token order
    ("backbone.max_length=256", "anchor"), ("features.positions=user", "anchor"), ("features.shaded_spans=2", "anchor"),
    ("features.delta=0.1", "relevant"), ("relevance.min_log_odds=1.0", "relevant"),
    ("synthesis.temperature=0.5", "rows"), ("seed=1", "rows"), ("n_samples=7", "rows"),
    ("g_vendi.dim=16", "g_vendi"),
])
def test_a_change_renames_its_stage_and_everything_downstream_only(override, first_changed):
    order = ["sae", "anchor", "relevant", "rows", "g_vendi"]
    base, changed = names(), names(override)
    for stage in order:
        downstream = order.index(stage) >= order.index(first_changed)
        assert (base[stage] != changed[stage]) == downstream, (override, stage)


def test_keys_hold_the_dtype_the_backbone_runs_in():
    cfg = compose_config([])
    resolved = resolved_dtype(plan(cfg).backbone)
    assert cfg.backbone.dtype == "auto" and resolved in ("float32", "bfloat16")
    assert names() == names(f"backbone.dtype={resolved}")  # auto and what it resolves to are one SAE
    assert names()["sae"] != names("backbone.dtype=float16")["sae"]


def test_a_real_data_row_set_does_not_depend_on_the_seed_or_the_generator():
    def rows(*overrides):
        cfg = compose_config(["synthesis=full_dataset", *overrides])
        return plan(cfg).rows(plan(cfg).strategy).name

    assert rows() == rows("seed=3") == rows("n_samples=9") == rows("generator.batch_size=2")


def test_the_stages_read_the_plan_a_snapshot_of_the_config(tiny_llama_dir, tmp_path):
    """Stage functions take the plan, never the composed config: a change of the config after planning reaches no
    stage, no component and no manifest."""
    from fac_lightning.files import read_json
    from fac_lightning.stages.sae import run_sae_stage

    cfg = tiny_config(tiny_llama_dir, tmp_path)
    run = plan(cfg)
    cfg.seed, cfg.n_samples, cfg.sae.k = 7, 3, 4
    cfg.paths.artifacts_dir = str(tmp_path / "elsewhere")
    folder = run_sae_stage(run)
    assert folder == run.sae.path and folder.parent == tmp_path / "artifacts" / "sae"
    assert not (tmp_path / "elsewhere").exists()
    saved = read_json(folder / "manifest.json")["config"]
    assert (saved["seed"], saved["n_samples"], saved["sae"]["k"]) == (0, 50, 8)
    assert (run.strategy.seed, run.strategy.n_samples) == (0, 50)  # built after the change, from the snapshot
