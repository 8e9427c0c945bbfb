"""The ``chat_model`` model kind: a causal LM that answers chats. ``sft_lora`` produces one (its adapter merged);
the un-finetuned backbone is one too (``ChatModel.from_backbone``: the base row every SFT is compared with).
Benchmarks that generate (``alpacaeval``) or score continuations (``lm_eval``) need one."""

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fac_lightning.generation.hf import TransformersGenerator


@dataclass
class ChatModel:
    model: PreTrainedModel
    """A causal LM in eval mode (a LoRA adapter already merged into it)."""
    tokenizer: PreTrainedTokenizerBase
    """Its tokenizer, with the chat template the model was trained with."""
    name: str
    """What the model is, in results (e.g. ``sft_lora:smollm2_135m`` or ``base:gemma3_270m``)."""

    @classmethod
    def from_backbone(cls, backbone) -> "ChatModel":
        return cls(backbone.model, backbone.tokenizer, f"base:{backbone.cfg.name}")

    def generator(self, batch_size: int = 8) -> TransformersGenerator:
        """The transformers engine on this model (chat template applied, left-padded batches)."""
        return TransformersGenerator(self.model, self.tokenizer, batch_size, self.name)
