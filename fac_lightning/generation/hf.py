"""transformers engine: batched, left-padded, KV-cached ``generate`` on the backbone (or any HF model)."""

from dataclasses import dataclass

import torch
from rich.progress import track

from fac_lightning.chat import format_chat
from fac_lightning.checks import at_least
from fac_lightning.data.examples import Conversation
from fac_lightning.generation import GENERATORS
from fac_lightning.generation.base import GeneratorConfig, SamplingParams, cut_at_stop


@dataclass
class TransformersConfig(GeneratorConfig):
    batch_size: int = 8
    """Prompts per ``generate`` call (left-padded)."""

    def __post_init__(self):
        at_least(self, 1, "batch_size")


@GENERATORS.register("transformers", TransformersConfig)
class TransformersGenerator:
    def __init__(self, model, tokenizer, batch_size: int = 8, name: str = "transformers"):
        self.model, self.tokenizer, self.batch_size, self.name = model, tokenizer, batch_size, name

    @classmethod
    def from_config(cls, cfg: TransformersConfig, backbone) -> "TransformersGenerator":
        if cfg.model is None:
            if backbone is None:
                raise ValueError("generator.model is null and no backbone was given to generate with")
            return cls(backbone.model, backbone.tokenizer, cfg.batch_size, f"transformers:{backbone.cfg.name}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype="auto").eval()
        return cls(model, tokenizer, cfg.batch_size, f"transformers:{cfg.model}")

    def generate(self, prompts: list[Conversation], params: SamplingParams) -> list[list[str]]:
        return self.complete([format_chat(self.tokenizer, p, add_generation_prompt=True) for p in prompts], params)

    @torch.inference_mode()
    def complete(self, texts: list[str], params: SamplingParams) -> list[list[str]]:
        tok = self.tokenizer
        outputs: list[list[str]] = []
        padding_side, tok.padding_side = tok.padding_side, "left"
        try:
            batches = range(0, len(texts), self.batch_size)
            for i, start in enumerate(track(batches, description=f"generating ({self.name})",
                                            disable=len(batches) < 2)):
                enc = tok(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(self.model.device)
                torch.manual_seed(params.seed * 1_000_003 + i)
                sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p} \
                    if params.temperature > 0 else {"do_sample": False}
                out = self.model.generate(**enc, max_new_tokens=params.max_new_tokens, num_return_sequences=params.n,
                                          pad_token_id=tok.pad_token_id, **sampling)
                new = tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
                for j in range(0, len(new), params.n):
                    outputs.append([cut_at_stop(t, params.stop).strip() for t in new[j : j + params.n]])
        finally:
            tok.padding_side = padding_side
        return outputs
