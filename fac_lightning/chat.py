"""Chat formatting through the tokenizer's own template, and the template's fixed prefix.

The prefix is everything the template emits before the first user message's content (e.g. the system header of
Llama-3.1 or SmolLM2). It is *computed* per tokenizer: render two one-message chats that differ only in their
content and take the length of their common token prefix. Later stages skip these positions (paper §5.1).
"""

from transformers import PreTrainedTokenizerBase

from fac_lightning.data.examples import Conversation

_PROBES = ("a", "Z", "7", "?")


def format_chat(tokenizer: PreTrainedTokenizerBase, conversation: Conversation,
                add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode_chat(tokenizer: PreTrainedTokenizerBase, conversation: Conversation, max_length: int | None = None,
                add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a chat-formatted conversation; the template supplies BOS and role markers itself."""
    text = format_chat(tokenizer, conversation, add_generation_prompt)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[:max_length] if max_length else ids


def template_prefix_length(tokenizer: PreTrainedTokenizerBase) -> int:
    """Number of leading tokens that every single-user-turn chat shares (the template's fixed prefix)."""
    encodings = [encode_chat(tokenizer, [{"role": "user", "content": probe}]) for probe in _PROBES]
    length = 0
    for column in zip(*encodings):
        if len(set(column)) > 1:
            break
        length += 1
    return length
