import pytest
import torch

from fac_lightning.backbone import load_backbone
from fac_lightning.hooks import capture_residual, decoder_layers, edit_residual, run_to_layer
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides


def check_layer_semantics(backbone, layer):
    model = backbone.model
    ids = backbone.tokenizer(["Hello world, how are you?", "Hi"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        full = model(**ids, output_hidden_states=True)
        with capture_residual(model, layer) as box:
            model(**ids)
        early = run_to_layer(model, layer, ids.input_ids, ids.attention_mask)
    torch.testing.assert_close(box["acts"], full.hidden_states[layer])
    torch.testing.assert_close(early, full.hidden_states[layer])
    return model, ids, full


def test_last_layer_is_the_block_output_before_the_final_norm(tiny_llama_dir):
    """HF's hidden_states[-1] has the final norm applied; layer = num_layers reads the block output before it."""
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir, 4)).backbone, CACHE_DIR)
    ids = backbone.tokenizer(["Hello world"], return_tensors="pt")
    with torch.inference_mode():
        full = backbone.model(**ids, output_hidden_states=True)
        acts = run_to_layer(backbone.model, 4, ids.input_ids, ids.attention_mask)
    torch.testing.assert_close(backbone.model.model.norm(acts), full.hidden_states[4])


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_layer_L_is_hidden_states_L_on_tiny_llama(tiny_llama_dir, layer):
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir, layer)).backbone, CACHE_DIR)
    model, ids, full = check_layer_semantics(backbone, layer)
    with torch.inference_mode():
        with edit_residual(model, layer, lambda r: r):
            same = model(**ids).logits
        with edit_residual(model, layer, torch.zeros_like):
            zeroed = model(**ids).logits
    torch.testing.assert_close(same, full.logits)
    assert not torch.allclose(zeroed, full.logits)
    assert len(decoder_layers(model)) == 4


@pytest.mark.slow
def test_layer_semantics_on_smollm2():
    backbone = load_backbone(compose_config(["backbone=smollm2_135m", "backbone.dtype=float32"]).backbone, CACHE_DIR)
    check_layer_semantics(backbone, backbone.cfg.layer)
