"""LoRA SFT: TRL's completion-only labels, a fit that learns a planted response, the merged chat model, and SFT on
another backbone than the one features come from."""

import pytest

from fac_lightning.backbone import load_backbone
from fac_lightning.finetune.base import build_finetune
from fac_lightning.finetune.sft import sft_example
from fac_lightning.generation import SamplingParams
from fac_lightning.plan import plan
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides

ROW = {"prompt": [{"role": "user", "content": "Name a primary colour."}],
       "completion": [{"role": "assistant", "content": "Blue is a primary colour."}]}


def test_only_the_completion_carries_labels_and_long_rows_are_cut_at_the_end(smollm2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    example = sft_example(tokenizer, ROW, 1024)
    labelled = [t for t in example["labels"] if t != -100]
    assert example["labels"][: len(example["labels"]) - len(labelled)] == [-100] * (len(example["labels"]) - len(labelled))
    assert tokenizer.decode(labelled).strip() == "Blue is a primary colour.<|im_end|>"
    assert "Name a primary colour." in tokenizer.decode(example["input_ids"][: -len(labelled)])
    cut = sft_example(tokenizer, ROW, 12)
    assert cut["input_ids"] == example["input_ids"][:12] and cut["labels"] == example["labels"][:12]


def planted_rows(n: int) -> list[dict]:
    topics = ["bread", "tea", "rain", "trains", "maps", "cats", "chess", "glue", "soap", "kites", "clocks", "moss"]
    return [{"prompt": [{"role": "user", "content": f"Tell me about {topics[i % len(topics)]}, number {i}."}],
             "completion": [{"role": "assistant", "content": "The sky is blue."}]} for i in range(n)]


def sft_config(tiny_llama_dir, tmp_path, *overrides):
    return compose_config([*tiny_backbone_overrides(tiny_llama_dir), "task=instruction", "finetune=sft_lora",
                           "finetune.epochs=12", "finetune.lr=1e-2", "finetune.batch_size=4",
                           "finetune.accumulate_grad_batches=1", "finetune.max_length=64", "finetune.lora_r=16",
                           "logger=csv", f"paths.output_dir={tmp_path}", *overrides])


def test_sft_learns_a_planted_response_and_loads_back_merged(tiny_llama_dir, tmp_path):
    cfg = sft_config(tiny_llama_dir, tmp_path)
    backbone = load_backbone(cfg.backbone, CACHE_DIR)
    finetune = build_finetune(cfg.finetune)
    prompt = [{"role": "user", "content": "Tell me about owls, number 99."}]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    from fac_lightning.finetune.chat_model import ChatModel

    before = ChatModel.from_backbone(backbone).generator().generate([prompt], greedy)[0][0]
    finetune.train(planted_rows(24), backbone, tmp_path, plan(cfg).fit_context(None))
    model = finetune.load(tmp_path, backbone)
    assert model.name == "sft_lora:tiny_llama"
    assert not hasattr(model.model, "peft_config")  # the adapter is merged: a plain transformers model
    after = model.generator().generate([prompt], greedy)[0][0]
    assert after.startswith("The sky is blue") and not before.startswith("The sky is blue")


def test_sft_on_another_backbone_than_the_feature_backbone(tiny_llama_dir, smollm2_dir, tmp_path):
    """Features from SmolLM2-135M (the run's backbone), SFT on the tiny model (``finetune.target``)."""
    cfg = compose_config(["backbone=smollm2_135m", "task=instruction", "finetune=sft_lora",
                          "backbone@finetune.target=llama31_8b", "finetune.target.name=tiny_llama",
                          f"finetune.target.model={tiny_llama_dir}", "finetune.target.layer=2",
                          "finetune.target.dtype=float32", "finetune.target.device=cpu", "finetune.epochs=1",
                          "finetune.batch_size=4", "finetune.max_length=64", "logger=csv",
                          f"paths.output_dir={tmp_path}"])
    backbone = load_backbone(cfg.backbone, CACHE_DIR)
    finetune = build_finetune(cfg.finetune)
    finetune.train(planted_rows(4), backbone, tmp_path, plan(cfg).fit_context(None))
    model = finetune.load(tmp_path, backbone)
    assert model.name == "sft_lora:tiny_llama"
    assert model.model.config.hidden_size == 64 != backbone.d_model


def test_a_bad_lora_setting_is_named():
    with pytest.raises(Exception, match="finetune.lora_r"):
        from fac_lightning.config import validate_config

        validate_config(compose_config(["task=instruction", "finetune=sft_lora", "finetune.lora_r=0"]))


def test_a_killed_sft_fit_resumes_from_an_adapter_only_checkpoint(tiny_llama_dir, tmp_path, monkeypatch):
    import torch

    from fac_lightning.finetune.sft import LoRASFT

    cfg = sft_config(tiny_llama_dir, tmp_path, "finetune.epochs=2")
    backbone = load_backbone(cfg.backbone, CACHE_DIR)
    finetune = build_finetune(cfg.finetune)
    original = LoRASFT.training_step

    def killed_in_epoch_1(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LoRASFT, "training_step", killed_in_epoch_1)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        finetune.train(planted_rows(8), backbone, tmp_path, plan(cfg).fit_context(None))
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"]
    assert state and all("lora_" in key for key in state)  # the adapters, not the frozen model
    monkeypatch.setattr(LoRASFT, "training_step", original)
    epochs = []
    monkeypatch.setattr(LoRASFT, "on_train_epoch_start", lambda self: epochs.append(self.current_epoch))
    finetune.train(planted_rows(8), backbone, tmp_path, plan(cfg).fit_context(None))
    assert epochs == [1] and (tmp_path / "adapter" / "adapter_config.json").exists()
