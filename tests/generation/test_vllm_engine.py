"""generator=vllm's engine arguments, without vLLM: its share of a GPU that the backbone already occupies, the
backbone as its model, and the CPU-only environment defaults (checked against a stand-in ``vllm`` module)."""

import os
import sys
from types import SimpleNamespace

import pytest
import torch

from fac_lightning.checks import ConfigError
from fac_lightning.generation import build_generator
from fac_lightning.generation.vllm_engine import CPU_DEFAULTS, VLLMConfig, engine_args, gpu_share

GIB = 2**30
BACKBONE = SimpleNamespace(path="/models/smollm2", model=SimpleNamespace(dtype=torch.bfloat16),
                           cfg=SimpleNamespace(name="smollm2_135m"))


def test_beside_a_loaded_backbone_vllm_gets_a_share_of_what_is_free():
    assert gpu_share(None, free_bytes=60 * GIB, total_bytes=80 * GIB) == 0.675  # 90 % of the free 60 GiB
    assert gpu_share(0.5, free_bytes=60 * GIB, total_bytes=80 * GIB) == 0.5
    with pytest.raises(ConfigError, match=r"generator.gpu_memory_utilization.*40.0 GiB.*only 20.0 of 80.0 GiB are "
                                          r"free.*at most 0.25"):
        gpu_share(0.5, free_bytes=20 * GIB, total_bytes=80 * GIB)


def test_engine_args_run_the_backbone_at_its_dtype_and_give_no_share_on_a_cpu():
    cfg = VLLMConfig(engine="vllm", max_model_len=2048)
    on_gpu = engine_args(cfg, BACKBONE, (60 * GIB, 80 * GIB))
    assert on_gpu == {"model": "/models/smollm2", "dtype": "bfloat16", "seed": 0, "tensor_parallel_size": 1,
                      "enforce_eager": False, "max_model_len": 2048, "gpu_memory_utilization": 0.675}
    assert "gpu_memory_utilization" not in engine_args(cfg, BACKBONE, None)
    other = engine_args(VLLMConfig(engine="vllm", model="org/model"), BACKBONE, None)
    assert other["model"] == "org/model" and "dtype" not in other and "max_model_len" not in other


@pytest.mark.parametrize("field,value", [("gpu_memory_utilization", 1.5), ("gpu_memory_utilization", 0.0),
                                         ("max_model_len", 0)])
def test_out_of_range_values_are_named(field, value):
    with pytest.raises(ConfigError, match=field):
        VLLMConfig(engine="vllm", **{field: value})


def test_the_engine_gets_the_args_and_cpu_defaults_only_without_cuda(monkeypatch):
    made = []
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=lambda **kwargs: made.append(kwargs)))
    for key in CPU_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (40 * GIB, 80 * GIB))
    gen = build_generator(VLLMConfig(engine="vllm"), BACKBONE)
    assert made[-1]["gpu_memory_utilization"] == 0.45 and gen.name == "vllm:smollm2_135m"
    assert not any(key in os.environ for key in CPU_DEFAULTS)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    build_generator(VLLMConfig(engine="vllm"), BACKBONE)
    assert "gpu_memory_utilization" not in made[-1]
    assert all(os.environ[key] == value for key, value in CPU_DEFAULTS.items())
