"""The generator protocol shared by every engine, and its meter."""

import time
from dataclasses import dataclass, field
from typing import Protocol

from omegaconf import MISSING

from fac_lightning.data.examples import Conversation


@dataclass
class GeneratorConfig:
    engine: str = MISSING
    """Registered engine (``fac_lightning.generation``)."""
    model: str | None = None
    """Hub id or local folder of the model to generate with; None = the backbone itself (not for openai)."""

    def requirements(self, data_dir) -> list:
        """What the engine imports and calls (``fac_lightning.requirements``), checked before any model loads."""
        return []


@dataclass
class SamplingParams:
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 1.0
    max_new_tokens: int = 256
    n: int = 1
    """Completions per prompt."""
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    """Completions are cut at the first of these strings."""

    def __post_init__(self):
        if self.temperature == 0 and self.n > 1:
            raise ValueError(f"temperature 0 (greedy decoding) gives one completion per prompt; {self.n} were asked "
                             "for: set synthesis.temperature > 0")


def cut_at_stop(text: str, stop: list[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


class Generator(Protocol):
    name: str

    def generate(self, prompts: list[Conversation], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions for each chat prompt, in order."""
        ...

    def complete(self, texts: list[str], params: SamplingParams) -> list[list[str]]:
        """``params.n`` raw continuations of each text (no chat template applied; Magpie needs this)."""
        ...


class MeteredGenerator:
    """A generator that tallies what it returns into ``sink`` (anything with ``tally(key, count)``: the synthesis row
    writer, which persists them with each finished unit): ``generator/calls``, ``generator/completions``,
    ``generator/completion_tokens`` (by ``tokenizer``, so every engine is counted alike) and ``generator/seconds``."""

    def __init__(self, generator: Generator, tokenizer, sink):
        self.generator, self.tokenizer, self.sink = generator, tokenizer, sink
        self.name = generator.name

    def _metered(self, call, inputs, params: SamplingParams) -> list[list[str]]:
        started = time.time()
        outputs = call(inputs, params)
        texts = [t for completions in outputs for t in completions]
        self.sink.tally("generator/seconds", round(time.time() - started, 3))
        self.sink.tally("generator/calls")
        self.sink.tally("generator/completions", len(texts))
        self.sink.tally("generator/completion_tokens",
                        sum(len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"])
                        if texts else 0)
        return outputs

    def generate(self, prompts: list[Conversation], params: SamplingParams) -> list[list[str]]:
        return self._metered(self.generator.generate, prompts, params)

    def complete(self, texts: list[str], params: SamplingParams) -> list[list[str]]:
        return self._metered(self.generator.complete, texts, params)
