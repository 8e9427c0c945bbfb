"""What lets a finetune resume at any optimizer step and end as the uninterrupted fit would: a batch order that is a
function of (seed, epoch) and position, and step checkpoints written only where a resumed fit can continue exactly.

Lightning restores a loader's position from a mid-epoch checkpoint when the loader is stateful (torchdata's
``StatefulDataLoader``, whose batch sampler saves its sampler iterator's state), but not from an epoch-end checkpoint
(it is not "restarting" then), and in a resumed fit it makes the first epoch's loader iterator before it calls the
samplers' ``set_epoch``. So ``EpochShuffle`` draws epoch ``e``'s permutation from ``seed + e`` (as
``DistributedSampler`` does) when the epoch's first index is taken, and its iterator saves (epoch, position).
"""

import math

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import Sampler
from torchdata.stateful_dataloader import StatefulDataLoader


def process_group() -> tuple[int, int]:
    """(rank, world size) of this process in the running DDP fit; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` per epoch, drawn from ``seed + epoch``. Inside a DDP fit each process takes every
    ``world``-th index of it from its rank, the permutation padded by its first indices to a multiple of ``world``
    (as ``DistributedSampler``): equal shards, so the processes step together and rank 0's saved position is every
    rank's."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> "EpochShuffleIterator":
        return EpochShuffleIterator(self)

    def __len__(self) -> int:
        return math.ceil(self.n / process_group()[1])

    def order(self, epoch: int) -> list[int]:
        """This process's indices of epoch ``epoch``."""
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        rank, world = process_group()
        order += order[: len(self) * world - self.n]
        return order[rank::world]


class EpochShuffleIterator:
    """One epoch of an ``EpochShuffle``; its state (epoch, position) is what a mid-epoch checkpoint keeps."""

    def __init__(self, sampler: EpochShuffle):
        self.sampler, self.epoch, self.position, self.order = sampler, None, 0, None

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.order is None:  # the first index: the epoch is known by now
            self.epoch = self.sampler.epoch if self.epoch is None else self.epoch
            self.order = self.sampler.order(self.epoch)
        if self.position == len(self.order):
            raise StopIteration
        self.position += 1
        return self.order[self.position - 1]

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch if self.epoch is None else self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.order = state["epoch"], state["position"], None


def shuffled_batches(items, batch_size: int, seed: int, collate_fn=None) -> StatefulDataLoader:
    """The training batches of a finetune: ``EpochShuffle`` order, through a ``StatefulDataLoader`` whose position
    Lightning saves in each checkpoint, so a fit killed mid-epoch goes on with the batches it had not seen."""
    return StatefulDataLoader(items, batch_size=batch_size, sampler=EpochShuffle(len(items), seed),
                              collate_fn=collate_fn)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimizer steps, written only right after an optimizer step (a
    checkpoint inside a gradient accumulation would lose the gradients accumulated so far, and a resumed process
    would write one there: Lightning's step trigger does not remember what it saved) and never at an epoch's last
    batch (the epoch-end checkpoint follows; a mid-epoch state there resumes into an exhausted loader)."""

    def __init__(self, dirpath, every_n_train_steps: int):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, enable_version_counter=False,
                         every_n_train_steps=every_n_train_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if stepped and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
