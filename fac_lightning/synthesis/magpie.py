"""Magpie (Xu et al. 2024): give the aligned model only its chat template's pre-query prefix (optionally after a
task system prompt) and let it write the user query itself."""

from dataclasses import dataclass

from fac_lightning.chat import format_chat
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy

_MARK = "\x00USER_MESSAGE\x00"


def pre_query_template(tokenizer, system: str | None) -> str:
    """The chat template rendered up to where a user message starts (Magpie's pre-query template)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _MARK}]
    return format_chat(tokenizer, messages).split(_MARK)[0]


@dataclass
class MagpieConfig(GenerativeConfig):
    top_p: float = 1.0
    """Magpie's Llama-3.1 script: T=0.8, top-p 1.0 for instructions."""


@dataclass
class MagpiePrompts:
    system: str | None = None
    """System prompt placed before the bare user prefix (None = the template's default)."""


@STRATEGIES.register("magpie", MagpieConfig)
class MagpieStrategy(Strategy):
    Prompts = MagpiePrompts

    def start(self) -> None:
        self.pre_query = pre_query_template(self.context.tokenizer, self.prompts.system)

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        texts = [self.pre_query] * self.cfg.prompts_per_call
        for (raw,) in self.generator.complete(texts, self.params(unit)):
            writer.offer(raw, self.provenance(unit, self.pre_query))
