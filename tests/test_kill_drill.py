"""The kill drill: the whole chain (``python train.py``, the real entry point) on the tiny Llama, killed with SIGKILL
when the SAE's ``.partial`` folder appears and when synthesis has finished its first unit, stopped with SIGTERM (what
a cluster scheduler sends) during the finetune, and rerun after each: the last rerun ends with the same FAC and
benchmark metrics as an uninterrupted run, and no ``.partial`` folder is left."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import start_train


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
    finish(start_train(tiny_llama_dir, reference / "artifacts", reference / "run"))
    expected = outcome(reference / "run")
    print(f"\nuninterrupted run: {time.time() - started:.0f} s, {json.dumps(expected)}")

    artifacts, log = tmp_path / "drilled" / "artifacts", []
    for attempt, (condition, sig) in enumerate([(sae_partial, signal.SIGKILL), (synthesis_unit_done, signal.SIGKILL),
                                                (finetune_checkpointed, signal.SIGTERM)]):
        process = start_train(tiny_llama_dir, artifacts, tmp_path / "drilled" / f"run{attempt}")
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
    stderr = finish(start_train(tiny_llama_dir, artifacts, tmp_path / "drilled" / "final"))
    got = outcome(tmp_path / "drilled" / "final")
    print("\n".join(log))
    print(f"final rerun: {time.time() - resumed_at:.0f} s, {json.dumps(got)}\ndrill total: {time.time() - started:.0f} s")
    assert "Restoring states from the checkpoint path" in stderr  # the finetune resumed from its checkpoint
    assert got == expected
    assert not list(artifacts.rglob("*.partial")) and not list(reference.rglob("*.partial"))
