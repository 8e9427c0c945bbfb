"""The generator protocol shared by every engine."""

from dataclasses import dataclass, field
from typing import Protocol

from omegaconf import MISSING

from fac_lightning.data.conversations import Conversation


@dataclass
class GeneratorConfig:
    engine: str = MISSING
    """Registered engine (``fac_lightning.generation``)."""
    model: str | None = None
    """Hub id or local folder of the model to generate with; None = the backbone itself (not for openai)."""


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
