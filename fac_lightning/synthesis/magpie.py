"""Magpie (Xu et al. 2024): give the aligned model only its chat template's pre-query prefix (optionally after a
task system prompt) and let it write the user query itself."""

from fac_lightning.synthesis.base import RowWriter, Strategy, register_strategy


@register_strategy
class MagpieStrategy(Strategy):
    name = "magpie"

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        texts = [self.context.pre_query] * self.cfg.prompts_per_call
        for (raw,) in self.generator.complete(texts, self.params(unit)):
            writer.offer(raw, self.provenance(unit, self.context.pre_query))
