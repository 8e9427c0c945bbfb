"""What a sequence-classification head sees: the backbone's final-norm hidden state at each sequence's last token
(transformers' ``*ForSequenceClassification`` pooling), computed once per sequence in a process for the frozen-backbone
(head-only) finetune kinds."""

import torch
from rich.progress import track

from fac_lightning.activations import collate


def padded(tokenizer, sequences: list[list[int]]):
    batch = collate(sequences, tokenizer.pad_token_id, torch.zeros(0, dtype=torch.long), 0)
    return batch.input_ids_BT, batch.attention_mask_BT


_POOLED: dict[tuple, torch.Tensor] = {}
"""Pooled states computed in this process, by (model path, dtype, token ids): in a sweep (one process) the frozen
backbone runs over the benchmark and the safe training examples once, not once per run."""


@torch.inference_mode()
def pooled_states(backbone, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
    """(N, D) final-norm hidden state of each sequence's last token (what the classification head sees); batches are
    formed by length to limit padding."""
    model_key = (backbone.path, str(backbone.model.dtype))
    todo = sorted({tuple(s) for s in sequences} - {ids for key, ids in _POOLED if key == model_key}, key=len)
    for start in track(range(0, len(todo), batch_size), description="pooled states"):
        rows = [list(ids) for ids in todo[start : start + batch_size]]
        ids_BT, mask_BT = padded(backbone.tokenizer, rows)
        hidden_BTD = backbone.model.model(input_ids=ids_BT.to(backbone.device),
                                          attention_mask=mask_BT.to(backbone.device)).last_hidden_state
        last_B = mask_BT.sum(1) - 1
        states_BD = hidden_BTD[torch.arange(len(last_B)), last_B.to(backbone.device)].float().cpu()
        for ids, state_D in zip(todo[start : start + batch_size], states_BD, strict=True):
            _POOLED[model_key, ids] = state_D
    return torch.stack([_POOLED[model_key, tuple(s)] for s in sequences])
