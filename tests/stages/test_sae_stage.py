"""`stage=sae` end to end on a tiny random Llama: the real Hydra config, Lightning loop, artifact and resume."""

import csv
import json

import pytest

from fac_lightning.sae.module import SAEModule
from fac_lightning.sae.topk import load_sae
from fac_lightning.stages.sae import run_sae_stage, sae_artifact_dir
from tests.conftest import compose_config, tiny_backbone_overrides


def stage_config(tiny_llama_dir, tmp_path, steps: int):
    cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), "logger=csv", "sae.k=8", "sae.expansion_factor=4",
                          "sae.batch_tokens=256", f"sae.train_tokens={256 * steps}", "sae.val_every_steps=1000",
                          "sae.checkpoint_every_steps=3", "sae.lr=3e-3", "activations.max_length=64",
                          "activations.buffer_tokens=1024", "activations.heldout_sequences=4",
                          "trainer.log_every_n_steps=1"], tmp_path)
    cfg.data.sources = cfg.data.sources[2:3]
    cfg.data.sources[0].max_rows = 150
    return cfg


def test_sae_stage_trains_saves_and_fvu_falls(tiny_llama_dir, tmp_path):
    cfg = stage_config(tiny_llama_dir, tmp_path, steps=30)
    folder = run_sae_stage(cfg)
    assert folder == sae_artifact_dir(cfg) and not folder.with_name(folder.name + ".partial").exists()
    sae, sae_cfg = load_sae(folder)
    assert (sae_cfg["layer"], sae_cfg["d_in"], sae_cfg["num_latents"], sae_cfg["k"]) == (2, 64, 256, 8)
    assert sae_cfg["prefix_len"] > 0 and sae.W_dec.shape == (256, 64)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["steps"] == 30 and manifest["tokens"] == 30 * 256
    metrics = manifest["metrics"]
    assert 0 < metrics["val/fvu"] < 1 and metrics["val/l0"] <= 8
    assert metrics["val/ce_zero"] > metrics["val/ce_clean"]
    rows = list(csv.DictReader(next((tmp_path / "out").rglob("metrics.csv")).read_text().splitlines()))
    fvu = [float(r["train/fvu"]) for r in rows if r.get("train/fvu")]
    assert len(fvu) >= 20 and sum(fvu[-5:]) / 5 < 0.8 * sum(fvu[:3]) / 3
    assert run_sae_stage(cfg) == folder  # second call reuses the artifact


def test_killed_sae_stage_resumes_from_its_checkpoint(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = stage_config(tiny_llama_dir, tmp_path, steps=12)
    original = SAEModule.training_step
    calls = []

    def killed_at_step_7(self, batch, batch_idx):
        if self.global_step == 7:
            raise SystemExit("killed")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SAEModule, "training_step", killed_at_step_7)
    with pytest.raises(SystemExit):
        run_sae_stage(cfg)
    partial = sae_artifact_dir(cfg).with_name(sae_artifact_dir(cfg).name + ".partial")
    assert (partial / "last.ckpt").exists() and not sae_artifact_dir(cfg).exists()

    def counting(self, batch, batch_idx):
        calls.append(self.global_step)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SAEModule, "training_step", counting)
    folder = run_sae_stage(cfg)
    assert calls[0] == 6 and len(calls) == 6  # resumed after the step-6 checkpoint, ran steps 6..11 only
    assert json.loads((folder / "manifest.json").read_text())["steps"] == 12
