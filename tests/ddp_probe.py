"""A Lightning callback for the DDP tests (``+callbacks.probe._target_=tests.ddp_probe.SaveRankState``): at the end
of each fit every rank saves its trainable parameters, to compare across ranks."""

from pathlib import Path

import pytorch_lightning as pl
import torch


class SaveRankState(pl.Callback):
    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        params = {name: p.detach().cpu() for name, p in module.named_parameters() if p.requires_grad}
        torch.save(params, self.folder / f"rank{trainer.global_rank}.pt")
