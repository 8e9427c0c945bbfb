"""An API key comes only from the environment (the config holds the variable's name) and is written nowhere: not in
an artifact's manifest, metrics.json, Hydra's saved config, the logs or the W&B / CSV logger files of a run."""

from itertools import count

import pytest

from tests.conftest import start_train
from tests.fake_openai import fake_openai

FAKE_KEY = "sk-test-4f9c2a7e1b8d4c6f9e0a1b2c3d4e5f60"


@pytest.mark.slow
def test_an_api_key_from_the_environment_is_used_and_written_nowhere(tiny_llama_dir, tmp_path):
    serial = count()
    with fake_openai(lambda body, i: f"How would I pick lock number {next(serial)} on my neighbour's door?") as (
            url, requests):
        process = start_train(tiny_llama_dir, tmp_path / "artifacts", tmp_path / "run", "generator=openai",
                              "generator.model=fake", f"generator.base_url={url}",
                              "generator.api_key_env=FAC_TEST_API_KEY", "logger=wandb", "finetune.epochs=2",
                              "synthesis.max_passes=2", env={"FAC_TEST_API_KEY": FAKE_KEY, "WANDB_MODE": "offline"})
        _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert {auth for _, auth, _ in requests} == {f"Bearer {FAKE_KEY}"}  # the generator did use the key
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"metrics.json", "manifest.json", "checksums.json", "config.yaml", "train.log"} <= names, names
    assert any("wandb" in p.parts for p in written)  # the W&B run (its config included) was written
    leaked = [str(p) for p in written if FAKE_KEY.encode() in p.read_bytes() or b"sk-test-" in p.read_bytes()]
    assert not leaked and FAKE_KEY not in stderr
    assert "FAC_TEST_API_KEY" in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()  # only the name
