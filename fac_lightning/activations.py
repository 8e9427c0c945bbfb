"""Streamed token activations: backbone forward -> residual stream at layer L -> kept tokens -> shuffling buffer.

Nothing is cached on disk (an 8B model's activations for the paper's 113M tokens would be ~1 TB). The stream runs
only blocks 1..L of the backbone, under ``torch.inference_mode``, on length-sorted batches to limit padding.
"""

import copy
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import IterableDataset

from fac_lightning.backbone import Backbone
from fac_lightning.chat import encode_chat
from fac_lightning.config import ActivationsConfig
from fac_lightning.data.examples import Conversation
from fac_lightning.hooks import run_to_layer


@dataclass
class TokenBatch:
    input_ids_BT: torch.Tensor
    attention_mask_BT: torch.Tensor
    keep_BT: torch.Tensor
    """Tokens whose activations are used: not padding, not special, not in the template prefix."""


def keep_mask(input_ids_BT: torch.Tensor, attention_mask_BT: torch.Tensor, special_ids: torch.Tensor,
              prefix_len: int) -> torch.Tensor:
    keep_BT = attention_mask_BT.bool()
    if len(special_ids):
        keep_BT &= ~torch.isin(input_ids_BT, special_ids)
    keep_BT[:, :prefix_len] = False
    return keep_BT


def collate(sequences: list[list[int]], pad_id: int, special_ids: torch.Tensor, prefix_len: int) -> TokenBatch:
    """Right-pad token id lists into a batch with its keep mask."""
    T = max(len(s) for s in sequences)
    input_ids_BT = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    attention_mask_BT = torch.zeros((len(sequences), T), dtype=torch.long)
    for i, s in enumerate(sequences):
        input_ids_BT[i, : len(s)] = torch.tensor(s)
        attention_mask_BT[i, : len(s)] = 1
    return TokenBatch(input_ids_BT, attention_mask_BT, keep_mask(input_ids_BT, attention_mask_BT, special_ids,
                                                                 prefix_len))


def split_heldout(conversations: list[Conversation], n_heldout: int) -> tuple[list[Conversation], list[Conversation]]:
    """Deterministic split: the ``n_heldout`` conversations with the smallest content hash are held out."""
    digest = [hashlib.sha1(repr(c).encode()).hexdigest() for c in conversations]
    order = sorted(range(len(conversations)), key=digest.__getitem__)
    held = set(order[:n_heldout])
    return ([c for i, c in enumerate(conversations) if i not in held],
            [c for i, c in enumerate(conversations) if i in held])


class TokenizedCorpus:
    """Chat-formatted, tokenized conversations, batched in length-sorted windows in a seeded order."""

    def __init__(self, backbone: Backbone, conversations: list[Conversation], cfg: ActivationsConfig):
        tok = backbone.tokenizer
        self.cfg = cfg
        self.sequences = [encode_chat(tok, c, cfg.max_length) for c in conversations]
        self.sequences = [s for s in self.sequences if len(s) > backbone.prefix_len + 1]
        self.pad_id = tok.pad_token_id
        self.special_ids = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
        self.prefix_len = backbone.prefix_len if cfg.skip_template_prefix else 0
        if not cfg.exclude_special_tokens:
            self.special_ids = self.special_ids[:0]

    def __len__(self) -> int:
        return len(self.sequences)

    def shard(self, rank: int, world_size: int) -> "TokenizedCorpus":
        """Every ``world_size``-th sequence from ``rank``: one DDP process's part of the held-out set."""
        part = copy.copy(self)
        part.sequences = self.sequences[rank::world_size]
        return part

    def batches(self, seed: int, epoch: int = 0) -> Iterator[TokenBatch]:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(self.sequences), generator=g).tolist()
        w, b = self.cfg.sort_window, self.cfg.text_batch_size
        for start in range(0, len(order), w):
            window = sorted(order[start : start + w], key=lambda i: len(self.sequences[i]))
            chunks = [window[i : i + b] for i in range(0, len(window), b)]
            for j in torch.randperm(len(chunks), generator=g).tolist():
                yield self.collate([self.sequences[i] for i in chunks[j]])

    def collate(self, sequences: list[list[int]]) -> TokenBatch:
        return collate(sequences, self.pad_id, self.special_ids, self.prefix_len)


class ShuffleBuffer:
    """Mixing buffer: when ``capacity`` rows have accumulated, shuffle them, emit all but half, keep that half."""

    def __init__(self, capacity: int, seed: int):
        self.capacity = capacity
        self.chunks: list[torch.Tensor] = []
        self.size = 0
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, x_ND: torch.Tensor) -> None:
        self.chunks.append(x_ND)
        self.size += len(x_ND)

    def ready(self) -> bool:
        return self.size >= self.capacity

    def take(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Emit shuffled batches of ``batch_size`` until about half the capacity (plus a remainder) is left."""
        x_ND = torch.cat(self.chunks)
        order_N = torch.randperm(len(x_ND), generator=self.generator)  # seeded on the CPU, copied without a sync
        x_ND = x_ND[order_N.to(x_ND.device, non_blocking=True)]
        n_out = (len(x_ND) - self.capacity // 2) // batch_size * batch_size
        self.chunks, self.size = [x_ND[n_out:]], len(x_ND) - n_out
        yield from x_ND[:n_out].split(batch_size)


class ActivationStream(IterableDataset):
    """Endless stream of (batch_tokens, D) float32 activation batches; the trainer's max_steps ends it.

    Under DDP each of the ``world_size`` ranks forwards its own share of the corpus's seeded batch order (every
    ``world_size``-th batch, from ``rank``), so the ranks' tokens are disjoint; ``sequences_done`` is the position in
    that common order (all ranks' batches counted), and a resumed run passes it back as ``start_sequence`` so the
    stream continues where the checkpoint left it (the buffer's unemitted content at the time of the kill is lost).
    """

    def __init__(self, backbone: Backbone, corpus: TokenizedCorpus, batch_tokens: int, buffer_tokens: int,
                 seed: int, start_sequence: int = 0, rank: int = 0, world_size: int = 1):
        self.backbone, self.corpus = backbone, corpus
        self.batch_tokens, self.buffer_tokens, self.seed = batch_tokens, buffer_tokens, seed
        self.sequences_done = start_sequence
        self.rank, self.world_size = rank, world_size

    def token_batches(self) -> Iterator[TokenBatch]:
        """This rank's batches, from ``sequences_done`` on; each is counted once the consumer asks for the next."""
        epoch, skip = divmod(self.sequences_done, len(self.corpus))
        while True:
            for k, batch in enumerate(self.corpus.batches(self.seed, epoch)):
                n = len(batch.input_ids_BT)
                if skip >= n:
                    skip -= n
                    continue
                skip = 0
                if k % self.world_size == self.rank:
                    yield batch
                self.sequences_done += n
            epoch += 1

    @torch.inference_mode()
    def harvest(self, batch: TokenBatch) -> torch.Tensor:
        """Float32 activations (N, D) of the kept tokens of one (CPU) batch.

        The kept positions are listed on the CPU, so selecting them on a GPU needs no device-to-host sync (a boolean
        mask would: its output size lives on the device), and the inputs are copied without waiting for the device:
        the next batch's kernels queue while this one runs."""
        device = self.backbone.device
        keep_N = batch.keep_BT.flatten().nonzero().squeeze(1)
        acts_BTD = run_to_layer(self.backbone.model, self.backbone.cfg.layer,
                                batch.input_ids_BT.to(device, non_blocking=True),
                                batch.attention_mask_BT.to(device, non_blocking=True))
        return acts_BTD.flatten(0, 1)[keep_N.to(device, non_blocking=True)].float()

    def activation_batches(self, token_batches: Iterable[TokenBatch]) -> Iterator[torch.Tensor]:
        """(batch_tokens, D) float32 batches of these token batches' activations, through the shuffling buffer."""
        buffer = ShuffleBuffer(max(self.buffer_tokens, 2 * self.batch_tokens),
                               self.seed + self.sequences_done + 1_000_003 * self.rank)
        for batch in token_batches:
            buffer.add(self.harvest(batch))
            if buffer.ready():
                for x_BD in buffer.take(self.batch_tokens):
                    yield x_BD.clone()  # leave inference mode: the SAE trains on it

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.activation_batches(self.token_batches())
