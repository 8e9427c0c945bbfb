"""The head-only classifier's pooled states: what HF's sequence-classification head would see, computed once each."""

import torch
from transformers import AutoModelForSequenceClassification

from fac_lightning.backbone import load_backbone
from fac_lightning.finetune import pooled
from fac_lightning.finetune.classifier import encode_texts
from fac_lightning.finetune.pooled import pooled_states
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides


def test_pooled_states_match_hf_classification_input_and_are_computed_once(tiny_llama_dir, monkeypatch):
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir)).backbone, CACHE_DIR)
    texts = ["a short one", "a somewhat longer message about nothing in particular", "mid length text"]
    sequences = encode_texts(backbone.tokenizer, texts, 64)
    monkeypatch.setattr(pooled, "_POOLED", {})
    states_ND = pooled_states(backbone, sequences, batch_size=2)

    hf = AutoModelForSequenceClassification.from_pretrained(tiny_llama_dir, num_labels=2).eval()
    seen = []
    hf.score.register_forward_hook(lambda module, args, out: seen.append(args[0][0, -1]))
    for ids in sequences:  # one at a time: no padding at all
        hf(input_ids=torch.tensor([ids]))
    torch.testing.assert_close(states_ND, torch.stack(seen), atol=1e-4, rtol=1e-4)

    forwards = []
    backbone.model.model.register_forward_hook(lambda *args: forwards.append(1))
    again_ND = pooled_states(backbone, [sequences[2], sequences[0]], batch_size=2)
    assert forwards == [] and torch.equal(again_ND, states_ND[[2, 0]])
    pooled_states(backbone, [sequences[1], encode_texts(backbone.tokenizer, ["new"], 64)[0]], batch_size=2)
    assert forwards == [1]  # only the new sequence ran
