"""The kill drill: the whole chain (``python train.py``, the real entry point) on the tiny Llama, killed with SIGKILL
when the SAE's ``.partial`` folder appears and when synthesis has finished its first unit, stopped with SIGTERM (what
a cluster scheduler sends) during the finetune, and rerun after each: the last rerun ends with the same FAC and
benchmark metrics as an uninterrupted run, and no ``.partial`` folder is left."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CACHE_DIR, DATA_DIR, ROOT, tiny_backbone_overrides

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


def start(tiny_llama_dir: Path, artifacts: Path, run_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "train.py", *tiny_backbone_overrides(tiny_llama_dir), *TINY_CHAIN,
               f"paths.artifacts_dir={artifacts}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "FAC_DATA_DIR": str(DATA_DIR), "FAC_CACHE_DIR": str(CACHE_DIR), "WANDB_MODE": "offline"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def sae_partial(artifacts: Path) -> bool:
    return any((artifacts / "sae").glob("*.partial"))


def synthesis_unit_done(artifacts: Path) -> bool:
    for state in (artifacts / "synthetic").glob("*.partial/state.json"):
        try:
            if json.loads(state.read_text())["units_done"] >= 1:
                return True
        except (OSError, ValueError):  # being replaced right now
            pass
    return False


def finetune_checkpointed(artifacts: Path) -> bool:
    return any((artifacts / "finetune").glob("*.partial/last.ckpt"))


def run_until(process: subprocess.Popen, condition, artifacts: Path, timeout: float = 300) -> bool:
    """Wait until ``condition(artifacts)`` holds (True) or the process ends (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition(artifacts):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the run reached no {condition.__name__} within {timeout} s")


def finish(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def outcome(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"fac": metrics["fac"], "benchmark": metrics["benchmark"]["metrics"], "strategy_rows":
            metrics["strategy_rows"], "train_rows": metrics["train_rows"]}


@pytest.mark.slow
def test_killed_and_terminated_runs_resume_to_the_uninterrupted_result(tiny_llama_dir, tmp_path):
    started = time.time()
    reference = tmp_path / "reference"
    finish(start(tiny_llama_dir, reference / "artifacts", reference / "run"))
    expected = outcome(reference / "run")
    print(f"\nuninterrupted run: {time.time() - started:.0f} s, {json.dumps(expected)}")

    artifacts, log = tmp_path / "drilled" / "artifacts", []
    for attempt, (condition, sig) in enumerate([(sae_partial, signal.SIGKILL), (synthesis_unit_done, signal.SIGKILL),
                                                (finetune_checkpointed, signal.SIGTERM)]):
        process = start(tiny_llama_dir, artifacts, tmp_path / "drilled" / f"run{attempt}")
        assert run_until(process, condition, artifacts), f"the run ended before {condition.__name__}"
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=300)
        partials = sorted(p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*.partial"))
        log.append(f"{sig.name} at {condition.__name__}: exit {process.returncode}, left {partials}")
        if sig == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:  # a clean stop: the handler's exit status and message, the finetune's checkpoint kept to resume from
            assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
            assert "received SIGTERM: stopping" in stderr and "Traceback" not in stderr
            assert any((artifacts / "finetune").glob("*.partial/last.ckpt"))
    resumed_at = time.time()
    stderr = finish(start(tiny_llama_dir, artifacts, tmp_path / "drilled" / "final"))
    got = outcome(tmp_path / "drilled" / "final")
    print("\n".join(log))
    print(f"final rerun: {time.time() - resumed_at:.0f} s, {json.dumps(got)}\ndrill total: {time.time() - started:.0f} s")
    assert "Restoring states from the checkpoint path" in stderr  # the finetune resumed from its checkpoint
    assert got == expected
    assert not list(artifacts.rglob("*.partial")) and not list(reference.rglob("*.partial"))
