"""A Lightning callback for the DDP test (``+callbacks.probe._target_=tests.ddp_probe.SaveRankState``): at the end of
the fit each rank saves its SAE's parameters and the token batches its stream forwarded, to compare across ranks."""

from pathlib import Path

import pytorch_lightning as pl
import torch


class SaveRankState(pl.Callback):
    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save({"params": {k: v.detach().cpu() for k, v in module.sae.state_dict().items()},
                    "sequences_done": trainer.datamodule.stream.sequences_done},
                   self.folder / f"rank{trainer.global_rank}.pt")
