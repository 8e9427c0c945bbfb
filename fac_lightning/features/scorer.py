"""FeatureScorer: g_i(x) = max over the sample's scored positions of SAE code i (paper §5.1, App. D eq. 30).

Scored positions are those after the chat template's prefix that are not padding or special tokens, restricted to
user tokens, response tokens or both. Codes are TopK-sparse per token (the paper's text) or the dense ReLU
pre-activations (the paper's released code, ``topk_per_token: false``).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fac_lightning.activations import collate
from fac_lightning.backbone import Backbone
from fac_lightning.chat import format_chat
from fac_lightning.data.examples import Conversation
from fac_lightning.features.table import FeatureTable, Span
from fac_lightning.hooks import run_to_layer

POSITIONS = ("both", "user", "response")
SCORER_VERSION = 3
"""The feature tables' stage version (``plan.table_stage``): bump it when a change alters the scores or spans."""


@dataclass
class ScoredChunk:
    """COO triplets of one chunk of samples, with the position of each max (for spans)."""

    sample_idx: np.ndarray
    feature_idx: np.ndarray
    score: np.ndarray
    argmax: np.ndarray


def role_spans(tokenizer, conversation: Conversation, max_length: int) -> tuple[list[int], list[str]]:
    """Token ids and the role of each token: a token belongs to a message if it overlaps that message's content in
    the rendered text; template tokens (role headers, end-of-turn markers) get the role ``template``."""
    text = format_chat(tokenizer, conversation)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"][:max_length], enc["offset_mapping"][:max_length]
    roles = ["template"] * len(ids)
    cursor = 0
    for message in conversation:
        start = text.find(message["content"].strip(), cursor)
        if start < 0:  # the template rewrote the content: its tokens stay "template" and are not pooled
            continue
        end = start + len(message["content"].strip())
        cursor = end
        for t, (a, b) in enumerate(offsets):
            if a < end and b > start:
                roles[t] = message["role"]
    return ids, roles


class FeatureScorer:
    def __init__(self, backbone: Backbone, sae, positions: str = "both", topk_per_token: bool = True,
                 floor: float = 0.0, batch_size: int = 16, max_length: int = 512):
        if positions not in POSITIONS:
            raise ValueError(f"features.positions={positions!r}: choose from {POSITIONS}")
        self.backbone, self.sae = backbone, sae
        self.positions, self.topk_per_token, self.floor = positions, topk_per_token, floor
        self.batch_size, self.max_length = batch_size, max_length
        tok = backbone.tokenizer
        self.special_ids = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)

    def tokenize(self, conversations: list[Conversation]) -> tuple[list[list[int]], list[torch.Tensor]]:
        """Token ids per sample and a bool mask of the positions this scorer may pool over."""
        wanted = {"both": {"user", "assistant"}, "user": {"user"}, "response": {"assistant"}}[self.positions]
        sequences, role_masks = [], []
        for conversation in conversations:
            ids, roles = role_spans(self.backbone.tokenizer, conversation, self.max_length)
            sequences.append(ids)
            role_masks.append(torch.tensor([r in wanted for r in roles], dtype=torch.bool))
        return sequences, role_masks

    def codes(self, x_ND: torch.Tensor) -> torch.Tensor:
        """(N, F) dense SAE codes of token activations."""
        if not self.topk_per_token:
            return self.sae.pre_acts(x_ND)
        acts_NK, idx_NK = self.sae.encode(x_ND)
        return torch.zeros(len(x_ND), self.sae.num_latents, device=x_ND.device).scatter_(1, idx_NK, acts_NK)

    @torch.inference_mode()
    def token_codes(self, sequences: list[list[int]], role_masks: list[torch.Tensor]) -> torch.Tensor:
        """(B, T, F) codes of every token (0 where the scorer may not pool: template, padding, other roles)."""
        batch = collate(sequences, self.backbone.tokenizer.pad_token_id, self.special_ids, self.backbone.prefix_len)
        keep_BT = batch.keep_BT.clone()
        for i, mask in enumerate(role_masks):
            keep_BT[i, : len(mask)] &= mask
        device = self.backbone.device
        acts_BTD = run_to_layer(self.backbone.model, self.backbone.cfg.layer, batch.input_ids_BT.to(device),
                                batch.attention_mask_BT.to(device)).float()
        keep_BT = keep_BT.to(device)
        codes_BTF = torch.zeros(*keep_BT.shape, self.sae.num_latents, device=device)
        codes_BTF[keep_BT] = self.codes(acts_BTD[keep_BT])
        return codes_BTF

    def score_batch(self, sequences: list[list[int]], role_masks: list[torch.Tensor]):
        """Max-pooled codes (B, F) and the argmax position of each."""
        max_BF, argmax_BF = self.token_codes(sequences, role_masks).max(dim=1)
        return max_BF.cpu(), argmax_BF.cpu()

    def dense_scores(self, conversations: list[Conversation]) -> np.ndarray:
        """(N, F) max-pooled scores of a few conversations (no sparsification), e.g. synthesis candidates."""
        sequences, masks = self.tokenize(conversations)
        return torch.cat([self.score_batch(sequences[i : i + self.batch_size], masks[i : i + self.batch_size])[0]
                          for i in range(0, len(sequences), self.batch_size)]).numpy()

    def score(self, sequences: list[list[int]], role_masks: list[torch.Tensor], offset: int = 0) -> ScoredChunk:
        """Sparse scores of sample ``offset + i`` for each sequence i (batched by length to limit padding)."""
        order = torch.tensor(sorted(range(len(sequences)), key=lambda i: len(sequences[i])), dtype=torch.long)
        parts = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            max_BF, argmax_BF = self.score_batch([sequences[i] for i in rows], [role_masks[i] for i in rows])
            b, f = (max_BF > self.floor).nonzero(as_tuple=True)
            parts.append((rows[b] + offset, f, max_BF[b, f], argmax_BF[b, f]))
        return ScoredChunk(*(torch.cat([p[i] for p in parts]).numpy() for i in range(4)))


def top_spans(chunk: ScoredChunk, sequences: list[list[int]], tokenizer, prefix_len: int, top_n: int,
              span_tokens: int) -> dict[int, list[Span]]:
    """For each feature, its ``top_n`` highest-scoring samples with the span ending at the argmax token."""
    order = np.lexsort((-chunk.score, chunk.feature_idx))  # by feature, then score descending
    features, starts = np.unique(chunk.feature_idx[order], return_index=True)
    spans: dict[int, list[Span]] = {}
    ends = np.append(starts[1:], len(order))
    for feature, start, end in zip(features.tolist(), starts.tolist(), ends.tolist()):
        kept: list[Span] = []
        for r in order[start:end]:  # best first; identical span texts (duplicate samples) are shown once
            span = span_of(sequences[chunk.sample_idx[r]], int(chunk.argmax[r]), float(chunk.score[r]),
                           int(chunk.sample_idx[r]), tokenizer, prefix_len, span_tokens)
            if all(span.text != k.text for k in kept):
                kept.append(span)
            if len(kept) == top_n:
                break
        spans[feature] = kept
    return spans


def span_of(ids: list[int], pos: int, score: float, sample: int, tokenizer, prefix_len: int,
            span_tokens: int) -> Span:
    start = max(prefix_len, pos - span_tokens + 1)
    before = tokenizer.decode(ids[start:pos])
    return Span(score=round(score, 4), sample=sample, text=f"{before}«{tokenizer.decode(ids[pos : pos + 1])}»",
                position=pos)


def shade_spans(scorer: FeatureScorer, sequences: list[list[int]], role_masks: list[torch.Tensor],
                spans: dict[int, list[Span]], shaded: int, span_tokens: int) -> None:
    """Give the first ``shaded`` spans of each feature their tokens with the feature's activation on each (a second
    pass over the samples those spans come from)."""
    wanted: dict[int, list[tuple[int, Span]]] = {}
    for feature, kept in spans.items():
        for span in kept[:shaded]:
            wanted.setdefault(span.sample, []).append((feature, span))
    tokenizer, prefix_len = scorer.backbone.tokenizer, scorer.backbone.prefix_len
    samples = sorted(wanted, key=lambda s: len(sequences[s]))
    for start in range(0, len(samples), scorer.batch_size):
        batch = samples[start : start + scorer.batch_size]
        codes_BTF = scorer.token_codes([sequences[s] for s in batch], [role_masks[s] for s in batch]).cpu()
        for b, sample in enumerate(batch):
            pieces = [tokenizer.decode([t]) for t in sequences[sample]]
            for feature, span in wanted[sample]:
                first = max(prefix_len, span.position - span_tokens + 1)
                span.tokens = [[pieces[t], round(float(codes_BTF[b, t, feature]), 3)]
                               for t in range(first, span.position + 1)]


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def build_table(scorer: FeatureScorer, conversations: list[Conversation], top_n: int = 10,
                span_tokens: int = 32, shaded: int = 5) -> FeatureTable:
    """Score every conversation (in memory; the ``features`` stage adds chunked, resumable caching)."""
    sequences, masks = scorer.tokenize(conversations)
    chunk = scorer.score(sequences, masks)
    return table_from_chunk(chunk, sequences, masks, scorer, top_n, span_tokens, shaded)


def table_from_chunk(chunk: ScoredChunk, sequences, role_masks, scorer: FeatureScorer, top_n: int,
                     span_tokens: int, shaded: int) -> FeatureTable:
    spans = top_spans(chunk, sequences, scorer.backbone.tokenizer, scorer.backbone.prefix_len, top_n, span_tokens)
    shade_spans(scorer, sequences, role_masks, spans, shaded, span_tokens)
    return FeatureTable(len(sequences), scorer.sae.num_latents, chunk.sample_idx.astype(np.int32),
                        chunk.feature_idx.astype(np.int32), chunk.score.astype(np.float32), scorer.floor, spans)
