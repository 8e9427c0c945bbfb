"""The finetune artifact: what its key covers."""

from fac_lightning.backbone import load_backbone
from fac_lightning.finetune.base import train_model
from fac_lightning.plan import plan
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides
from tests.finetune.test_reward import planted_pairs


def test_the_checkpoint_interval_is_not_part_of_the_model_key_and_the_training_settings_are(tiny_llama_dir, tmp_path):
    def model_folder(*overrides):
        cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), "task=reward", "finetune=reward_head",
                              "finetune.epochs=1", "finetune.max_length=64", "logger=csv", *overrides], tmp_path)
        backbone = load_backbone(cfg.backbone, CACHE_DIR)
        return train_model(plan(cfg), planted_pairs(4), backbone, None)

    trained = model_folder()
    assert model_folder("finetune.checkpoint_every_n_steps=1") == trained  # reused: the same model
    assert model_folder("finetune.lr=1e-3") != trained


def test_a_negative_checkpoint_interval_is_named():
    import pytest

    from fac_lightning.config import validate_config

    with pytest.raises(Exception, match=r"finetune.checkpoint_every_n_steps=-1: must be >= 0"):
        validate_config(compose_config(["task=reward", "finetune=reward_lora", "finetune.checkpoint_every_n_steps=-1"]))


def test_a_ddp_finetune_is_keyed_by_its_process_count(tiny_llama_dir, tmp_path):
    """finetune.batch_size is per process under DDP, so 2 processes train another model than 1 (the global batch
    doubles); one device keeps the key it always had."""
    def folder(*overrides):
        cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), "finetune=classifier_lora", *overrides],
                             tmp_path)
        return plan(cfg).model([{"text": "a", "label": 1}]).path

    one = folder("trainer=cpu")
    assert folder("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=1") == one
    assert folder("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2") != one
