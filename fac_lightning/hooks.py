"""Reading and editing the residual stream at a decoder layer, for any HF decoder architecture.

"Layer L" means the residual stream *after* decoder block L counted from 1, i.e. the output of
``decoder_layers(model)[L - 1]``, which equals ``model(..., output_hidden_states=True).hidden_states[L]`` (index 0 of
``hidden_states`` is the embedding output), except for the last block, where HF's ``hidden_states[-1]`` has the final
norm applied and ours does not. For the paper's Llama-3.1-8B, L = 16 is ``model.layers[15]``.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


class StopForward(Exception):
    """Raised by a capture hook to skip the blocks above the read layer (they cannot change its output)."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks (Llama, Mistral, Qwen2, Gemma-3 and any model that keeps them in a ModuleList
    whose length is ``num_hidden_layers``)."""
    n_layers = model.config.get_text_config().num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"{type(model).__name__}: no ModuleList of {n_layers} decoder blocks found")


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_hidden(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def capture_residual(model: nn.Module, layer: int, stop: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Within the context, each forward stores the layer-``layer`` residual stream (B, T, D) in ``box["acts"]``.
    With ``stop=True`` the forward raises ``StopForward`` right after, which callers catch (see ``run_to_layer``)."""
    box: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        box["acts"] = _hidden(output)
        if stop:
            raise StopForward

    handle = decoder_layers(model)[layer - 1].register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


@contextmanager
def edit_residual(model: nn.Module, layer: int, edit: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the context, the layer-``layer`` residual stream (B, T, D) is replaced by ``edit(resid)``."""

    def hook(_module, _inputs, output):
        return _replace_hidden(output, edit(_hidden(output)))

    handle = decoder_layers(model)[layer - 1].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def run_to_layer(model: nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Residual stream (B, T, D) at ``layer``, running only blocks 1..layer."""
    with capture_residual(model, layer, stop=True) as box:
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except StopForward:
            pass
    return box["acts"]
