"""Generators: chat prompts in, sampled completions out (``generator=transformers | openai``)."""

from fac_lightning.config import GeneratorConfig
from fac_lightning.generation.base import Generator, SamplingParams


def build_generator(cfg: GeneratorConfig, backbone=None) -> Generator:
    if cfg.kind == "transformers":
        from fac_lightning.generation.hf import TransformersGenerator

        return TransformersGenerator.from_config(cfg, backbone)
    if cfg.kind == "vllm":
        from fac_lightning.generation.vllm_engine import VLLMGenerator

        if cfg.model is None and backbone is None:
            raise ValueError("generator=vllm needs generator.model or a backbone")
        return VLLMGenerator.from_config(cfg, cfg.model or backbone.path)
    if cfg.kind == "openai":
        from fac_lightning.generation.openai_compatible import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator.from_config(cfg)
    raise ValueError(f"generator.kind={cfg.kind!r}: choose from ['openai', 'transformers', 'vllm']")


__all__ = ["Generator", "SamplingParams", "build_generator"]
