"""A run's logger is closed when its block ends, with the status of how it ended."""

import pytest
from omegaconf import OmegaConf

from fac_lightning import loggers


class Recorder:
    def __init__(self):
        self.statuses = []

    def finalize(self, status):
        self.statuses.append(status)


def test_a_failed_block_closes_its_logger_as_failed_and_a_finished_one_as_success(monkeypatch):
    made = []
    monkeypatch.setattr(loggers, "build_logger", lambda node: made.append(Recorder()) or made[-1])
    node = OmegaConf.create({"_target_": "unused"})
    with loggers.run_logger(node):
        pass
    with pytest.raises(KeyboardInterrupt), loggers.run_logger(node):
        raise KeyboardInterrupt  # Ctrl-C in the middle of a finetune
    assert [m.statuses for m in made] == [["success"], ["failed"]]


def test_a_failed_finetune_leaves_no_run_open(tiny_llama_dir, tmp_path, monkeypatch):
    from fac_lightning.stages import experiment
    from tests.stages.test_experiment import chain_config

    statuses = []
    monkeypatch.setattr(loggers, "close_logger", lambda logger, status="success": statuses.append(status))

    def fail(*args, **kwargs):
        raise RuntimeError("the finetune ran out of memory")

    monkeypatch.setattr(experiment, "train_model", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        experiment.run_experiment(chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only"))
    assert statuses[-1] == "failed"  # (the SAE stage before it closed its own run as a success)
