"""Generators (``generator=transformers | vllm | openai``): chat prompts in, sampled completions out. One module per
engine, registered in ``GENERATORS``; sampling settings come with each call (``SamplingParams``), not from here."""

from fac_lightning.generation.base import Generator, GeneratorConfig, SamplingParams
from fac_lightning.registry import Registry

GENERATORS = Registry("generator engine", "generator.engine", __name__, group="generator")


def build_generator(cfg: GeneratorConfig, backbone=None) -> Generator:
    return GENERATORS.get(cfg.engine).cls.from_config(cfg, backbone)


__all__ = ["GENERATORS", "Generator", "GeneratorConfig", "SamplingParams", "build_generator"]
