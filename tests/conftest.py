"""Shared fixtures: the real Hydra config tree, the embedded backbone's converted folder, and a tiny random Llama
(built from a config, with SmolLM2's tokenizer) saved as a local folder so tests exercise the local-folder loader."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from fac_lightning import config

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FAC_DATA_DIR", ROOT.parent / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("FAC_CACHE_DIR", Path.home() / ".cache" / "fac_lightning"))

config.register_configs()


def compose_config(overrides: list[str] = (), tmp_path: Path | None = None, config_name: str = "train") -> DictConfig:
    """Compose a root config (conf/train.yaml, or evaluate.yaml) exactly as the entry points do, with test paths."""
    paths = [f"paths.data_dir={DATA_DIR}", f"paths.cache_dir={CACHE_DIR}"]
    if tmp_path is not None:
        paths += [f"paths.artifacts_dir={tmp_path / 'artifacts'}", f"paths.output_dir={tmp_path / 'out'}"]
    return config.compose_config([*paths, *overrides], config_name)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded backbone converted to safetensors (converted once per machine, then read from the cache)."""
    from fac_lightning.backbone import convert_gguf

    return convert_gguf(compose_config(["backbone=smollm2_135m"]).backbone, CACHE_DIR)


@pytest.fixture(scope="session")
def tiny_llama_dir(smollm2_dir, tmp_path_factory) -> Path:
    """A 4-block random Llama (d_model 64) with SmolLM2's tokenizer and chat template, as a local folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_backbone_overrides(folder: Path, layer: int = 2) -> list[str]:
    return ["backbone=llama31_8b", "backbone.name=tiny_llama", f"backbone.model={folder}", f"backbone.layer={layer}",
            "backbone.dtype=float32", "backbone.device=cpu"]


def tiny_config(tiny_llama_dir, tmp_path, *overrides, config_name: str = "train") -> DictConfig:
    """A real config on the tiny Llama with a tiny SAE, small anchor sides and a one-source SAE corpus."""
    cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), "logger=csv", "sae.k=8", "sae.expansion_factor=4",
                          "sae.batch_tokens=256", "sae.train_tokens=2560", "sae.val_every_steps=1000",
                          "activations.max_length=64", "activations.buffer_tokens=1024",
                          "activations.heldout_sequences=4", *overrides], tmp_path, config_name)
    cfg.data.sources = cfg.data.sources[2:3]
    cfg.data.sources[0].max_rows = 80
    cfg.task.parts.anchor_positive.sources[0].max_rows = 30
    cfg.task.parts.anchor_negative.sources[0].max_rows = 30
    return cfg


CORPUS = ("[{name: alpaca_eval_gpt4_1106_preview, format: instruction_output, max_rows: 80, "
          "local_path: alpaca_eval/gpt4_1106_preview.model_outputs.json.gz}]")
TINY_CHAIN = [
    "logger=csv", "sae.k=8", "sae.expansion_factor=4", "sae.batch_tokens=256", "sae.train_tokens=2560",
    "sae.val_every_steps=1000", "activations.max_length=64", "activations.buffer_tokens=1024",
    "activations.heldout_sequences=4", f"data.sources={CORPUS}", "task.parts.anchor_positive.sources.0.max_rows=30",
    "task.parts.anchor_negative.sources.0.max_rows=30", "task.parts.seed.sources.0.max_rows=8", "n_samples=4",
    "task.min_words=1", "task.max_words=400", "relevance=all", "task.background_rows=20", "benchmark.limit=40",
    "synthesis=fac", "synthesis.max_new_tokens=12", "synthesis.feature_ratio=0.01", "synthesis.n=2", "synthesis.m=2",
    "finetune.epochs=40",
]
"""What ``tests/stages/test_experiment.py::chain_config`` sets, as command-line overrides (40 head-only epochs keep
the finetune running long enough to be stopped in the middle)."""


def train_command(tiny_llama_dir: Path, artifacts: Path, *overrides: str) -> list[str]:
    """``python train.py`` (the real entry point) on the tiny chain, as a command line."""
    return [sys.executable, "train.py", *tiny_backbone_overrides(tiny_llama_dir), *TINY_CHAIN,
            f"paths.artifacts_dir={artifacts}", *overrides]


def train_env(env: dict | None = None) -> dict:
    return {**os.environ, "FAC_DATA_DIR": str(DATA_DIR), "FAC_CACHE_DIR": str(CACHE_DIR), **(env or {})}


def start_train(tiny_llama_dir: Path, artifacts: Path, run_dir: Path, *overrides: str,
                env: dict | None = None) -> subprocess.Popen:
    """``python train.py`` on the tiny chain, in the background; stderr is kept."""
    command = train_command(tiny_llama_dir, artifacts, f"hydra.run.dir={run_dir}", *overrides)
    return subprocess.Popen(command, cwd=ROOT, env=train_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)



def synthesize_rows(cfg: DictConfig, backbone=None) -> Path:
    """What ``synthesize.py`` runs, in process: preflight, then the row set (its folder)."""
    from fac_lightning.stages.preflight import preflight
    from fac_lightning.stages.synthesis import SYNTHESIS, run_synthesis_stage

    return run_synthesis_stage(preflight(cfg, SYNTHESIS), backbone)


def kill_synthesis_after(monkeypatch, units: int) -> None:
    """Make the synthesis row writer raise Ctrl-C right after committing ``units`` units (a killed run)."""
    from fac_lightning.synthesis.base import RowWriter

    original = RowWriter.commit_unit

    def commit_then_die(self):
        original(self)
        if self.units_done == units:
            raise KeyboardInterrupt

    monkeypatch.setattr(RowWriter, "commit_unit", commit_then_die)


def record_units(monkeypatch, strategy_class) -> list[int]:
    """Restore the row writer and record the unit indices ``strategy_class`` runs from now on."""
    monkeypatch.undo()  # drops kill_synthesis_after's patch (and any other patch made before this call)
    units, run_unit = [], strategy_class.run_unit
    monkeypatch.setattr(strategy_class, "run_unit", lambda self, unit, writer: (units.append(unit),
                                                                                run_unit(self, unit, writer)))
    return units


def kill_and_resume(monkeypatch, cfg, make_generator, strategy_class) -> tuple[str, str, list[int]]:
    """Run ``cfg``'s synthesis with ``make_generator()``, kill it after its first unit, run it again: (the rows the
    killed run had written, the finished rows file, the units the second run ran)."""
    from fac_lightning.plan import plan
    from tests.synthesis.test_strategies import fac_with

    kill_synthesis_after(monkeypatch, units=1)
    with pytest.raises(KeyboardInterrupt):
        fac_with(make_generator(), monkeypatch, cfg)
    final = plan(cfg).rows().path
    written = (final.with_name(final.name + ".partial") / "rows.jsonl").read_text()
    units = record_units(monkeypatch, strategy_class)
    fac_with(make_generator(), monkeypatch, cfg)
    return written, (final / "rows.jsonl").read_text(), units

