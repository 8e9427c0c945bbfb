import pytest
import torch
from transformers import AutoModelForCausalLM

from fac_lightning.backbone import gguf_path, load_backbone
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides


@pytest.mark.slow
def test_gguf_package_to_cached_safetensors_gives_identical_logits(smollm2_dir):
    cfg = compose_config(["backbone=smollm2_135m", "backbone.dtype=float32"]).backbone
    assert (smollm2_dir / "model.safetensors").exists()
    src = gguf_path(cfg)
    from_gguf = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32).eval()
    backbone = load_backbone(cfg, CACHE_DIR)
    ids = backbone.tokenizer("The quick brown fox jumps over the lazy dog.", return_tensors="pt").input_ids
    with torch.inference_mode():
        assert torch.equal(from_gguf(ids).logits, backbone.model(ids).logits)


def test_local_folder_backbone_loads(tiny_llama_dir):
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir)).backbone, CACHE_DIR)
    assert backbone.d_model == 64 and backbone.prefix_len > 0
    assert backbone.tokenizer.padding_side == "right"


def test_layer_out_of_range_names_key_and_range(tiny_llama_dir):
    cfg = compose_config(tiny_backbone_overrides(tiny_llama_dir, layer=9)).backbone
    with pytest.raises(ValueError, match=r"backbone.layer=9 .* 1\.\.4"):
        load_backbone(cfg, CACHE_DIR)


def test_missing_gguf_package_names_it():
    cfg = compose_config(["backbone=smollm2_135m", "backbone.gguf_package=no_such_pkg_xyz"]).backbone
    with pytest.raises(FileNotFoundError, match="no_such_pkg_xyz"):
        gguf_path(cfg)
