"""Training a TopK SAE on streamed backbone activations, as a LightningModule + LightningDataModule.

Logged: train/fvu, train/loss, train/l0, train/dead_frac, train/auxk; on held-out text val/fvu, val/l0 and
val/ce_recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean), with the SAE reconstruction (or zeros) spliced into
the backbone's forward pass at the kept token positions and CE measured on the tokens after the template prefix.
"""

import json
import math
from dataclasses import asdict

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fac_lightning.activations import ActivationStream, TokenBatch, TokenizedCorpus
from fac_lightning.backbone import Backbone
from fac_lightning.hooks import capture_residual, edit_residual
from fac_lightning.sae import sae_class
from fac_lightning.sae.topk import TopKConfig


def geometric_median(x_ND: torch.Tensor, iters: int = 100, tol: float = 1e-5) -> torch.Tensor:
    """Weiszfeld's algorithm (as dictionary_learning / Gao et al. initialise b_dec)."""
    median_D = x_ND.mean(0)
    for _ in range(iters):
        weights_N = 1 / (x_ND - median_D).norm(dim=1).clamp_min(1e-8)
        new_D = (weights_N[:, None] * x_ND).sum(0) / weights_N.sum()
        if (new_D - median_D).norm() < tol * median_D.norm().clamp_min(1e-8):
            return new_D
        median_D = new_D
    return median_D


def auto_lr(num_latents: int) -> float:
    """2e-4 / sqrt(F / 2^14): the 1/sqrt(F) scaling of Gao et al. Fig. 3, as sparsify and dictionary_learning."""
    return 2e-4 / math.sqrt(num_latents / 2**14)


class SAEModule(pl.LightningModule):
    def __init__(self, cfg: TopKConfig, d_in: int, backbone: Backbone | None = None):
        super().__init__()
        # plain values (enums as their strings): a checkpoint must load under torch's weights-only unpickler
        self.save_hyperparameters({"sae": json.loads(json.dumps(asdict(cfg))), "d_in": d_in})
        self.cfg = cfg
        num_latents = cfg.num_latents or cfg.expansion_factor * d_in
        self.sae = sae_class(cfg.architecture)(d_in, num_latents, cfg.k, cfg.k_aux)
        self.backbone = backbone  # a plain attribute: never trained, never checkpointed
        self.register_buffer("tokens_since_fired_F", torch.zeros(num_latents, dtype=torch.long))
        self.register_buffer("b_dec_initialized", torch.tensor(False))
        self.val_sums: dict[str, float] = {}

    # ---- training -------------------------------------------------------------------------------------------
    def dead_mask(self) -> torch.Tensor:
        return self.tokens_since_fired_F >= self.cfg.dead_tokens

    @torch.no_grad()
    def init_b_dec(self, x_BD: torch.Tensor) -> None:
        if self.cfg.init_b_dec == "geometric_median":
            self.sae.b_dec.copy_(geometric_median(x_BD))
        elif self.cfg.init_b_dec == "mean":
            self.sae.b_dec.copy_(x_BD.mean(0))
        self.b_dec_initialized.fill_(True)

    def training_step(self, x_BD: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """One step without a device-to-host sync, so on a GPU the CPU queues the next step while this one runs:
        the b_dec check reads its flag only at step 0, the dead-latent count is updated by a scatter (a boolean index
        would sync), and the train metrics are computed and logged only on the steps the logger writes, none on the
        progress bar (Lightning turns progress-bar tensors into numbers after every step: a sync each)."""
        if self.global_step == 0 and not self.b_dec_initialized:  # from every rank's batch: the same b_dec on each
            self.init_b_dec(self.all_gather(x_BD).reshape(-1, x_BD.shape[-1]) if self.world_size() > 1 else x_BD)
        dead_F = self.dead_mask() if self.cfg.auxk_coef > 0 else None
        out = self.sae(x_BD, dead_F)
        main = out.fvu if self.cfg.loss == "fvu" else out.normalized_mse
        loss = main + self.cfg.auxk_coef * out.auxk
        with torch.no_grad():
            fired_BK = out.acts_BK > 0
            fires_F = torch.zeros_like(self.tokens_since_fired_F).scatter_add_(0, out.idx_BK.flatten(),
                                                                              fired_BK.flatten().long())
            fires_F, tokens = self.summed_over_ranks(fires_F), len(x_BD) * self.world_size()
            self.tokens_since_fired_F.add_(tokens).masked_fill_(fires_F > 0, 0)
            if self.logging_step():
                self.log_dict({"train/fvu": out.fvu, "train/loss": loss, "train/l0": fired_BK.sum(-1).float().mean(),
                               "train/normalized_mse": out.normalized_mse, "train/auxk": out.auxk,
                               "train/dead_frac": self.dead_mask().float().mean()})
        return loss

    def world_size(self) -> int:
        return self._trainer.world_size if self._trainer is not None else 1

    def summed_over_ranks(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` summed over the DDP processes (itself on one device), so every rank keeps the same statistics."""
        return self.trainer.strategy.reduce(x, reduce_op="sum") if self.world_size() > 1 else x

    def logging_step(self) -> bool:
        """Whether this step's metrics reach the logger (every ``trainer.log_every_n_steps``; every step outside a
        Trainer)."""
        every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        return every > 0 and (self.global_step + 1) % every == 0

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.cfg.normalize_decoder:
            self.sae.remove_parallel_decoder_grad()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.cfg.normalize_decoder:
            self.sae.normalize_decoder()

    def configure_optimizers(self):
        lr = self.cfg.lr or auto_lr(self.sae.num_latents)
        # fused: one pass over each (F, D) matrix per step instead of one per Adam operation (4-5x faster step on
        # the CPU, benchmarks/RESULTS.md; on CUDA one kernel instead of foreach's several)
        optimizer = torch.optim.Adam(self.sae.parameters(), lr=lr, betas=tuple(self.cfg.adam_betas),
                                     eps=self.cfg.adam_eps, fused=True)
        warmup = max(self.cfg.lr_warmup_steps, 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- held-out evaluation ----------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.val_sums = dict.fromkeys(["sse", "var_num", "l0", "tokens", "ce_clean", "ce_sae", "ce_zero", "ce_n"], 0.0)

    @torch.no_grad()
    def validation_step(self, batch: TokenBatch, batch_idx: int) -> None:
        model, layer = self.backbone.model, self.backbone.cfg.layer
        device = self.backbone.device
        ids_BT, mask_BT, keep_BT = (t.to(device) for t in (batch.input_ids_BT, batch.attention_mask_BT, batch.keep_BT))
        labels_BT = ids_BT.masked_fill(mask_BT == 0, -100)
        labels_BT[:, : self.backbone.prefix_len + 1] = -100

        def ce(logits_BTV) -> tuple[float, int]:
            targets = labels_BT[:, 1:]
            loss = F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1).float(), targets.flatten(), reduction="sum")
            return loss.item(), int((targets != -100).sum())

        with capture_residual(model, layer) as box:
            logits = model(input_ids=ids_BT, attention_mask=mask_BT, use_cache=False).logits
        x_ND = box["acts"][keep_BT].float().to(self.device)
        out = self.sae(x_ND)
        x_hat_ND = out.x_hat_BD

        def splice(replacement_ND):
            def edit(resid_BTD):
                resid_BTD = resid_BTD.clone()
                resid_BTD[keep_BT] = replacement_ND.to(resid_BTD.dtype).to(resid_BTD.device)
                return resid_BTD
            return edit

        s = self.val_sums
        ce_clean, n = ce(logits)
        for name, replacement in (("ce_sae", x_hat_ND), ("ce_zero", torch.zeros_like(x_hat_ND))):
            with edit_residual(model, layer, splice(replacement)):
                s[name] += ce(model(input_ids=ids_BT, attention_mask=mask_BT, use_cache=False).logits)[0]
        s["ce_clean"] += ce_clean
        s["ce_n"] += n
        s["sse"] += (x_hat_ND - x_ND).pow(2).sum().item()
        s["var_num"] += x_ND.pow(2).sum().item()  # with "tokens" and the sum below gives the total variance
        s.setdefault("x_sum", torch.zeros_like(x_ND[0]))
        s["x_sum"] = s["x_sum"] + x_ND.sum(0)
        s["l0"] += (out.acts_BK > 0).sum().item()
        s["tokens"] += len(x_ND)

    def on_validation_epoch_end(self) -> None:
        s = self.val_sums
        if self.world_size() > 1:  # each rank saw its share of the held-out batches: sum them exactly
            names = sorted(k for k in s if k != "x_sum")
            d_in = self.hparams["d_in"]
            x_sum = s.get("x_sum", torch.zeros(d_in, device=self.device)).to(self.device, torch.float64)
            packed = self.summed_over_ranks(torch.cat([torch.tensor([s[k] for k in names], dtype=torch.float64,
                                                                    device=self.device), x_sum]))
            s = dict(zip(names, packed[: len(names)].tolist())) | {"x_sum": packed[len(names):]}
        if not s.get("tokens"):
            return
        total_var = s["var_num"] - (s["x_sum"].pow(2).sum().item() / s["tokens"])
        ce_clean, ce_sae, ce_zero = (s[k] / max(s["ce_n"], 1) for k in ("ce_clean", "ce_sae", "ce_zero"))
        self.log_dict({
            "val/fvu": s["sse"] / total_var,
            "val/l0": s["l0"] / s["tokens"],
            "val/ce_clean": ce_clean,
            "val/ce_sae": ce_sae,
            "val/ce_zero": ce_zero,
            "val/ce_recovered": (ce_zero - ce_sae) / (ce_zero - ce_clean),
        }, prog_bar=False)


class ActivationDataModule(pl.LightningDataModule):
    """Training batches stream from the backbone; validation batches are held-out token sequences.

    Its ``state_dict`` (saved in every Lightning checkpoint) records how many sequences the stream consumed, so a
    resumed run continues the stream instead of replaying it.
    """

    def __init__(self, backbone: Backbone, train: TokenizedCorpus, heldout: TokenizedCorpus, batch_tokens: int,
                 buffer_tokens: int, seed: int):
        super().__init__()
        self.backbone, self.train, self.heldout = backbone, train, heldout
        self.batch_tokens, self.buffer_tokens, self.seed = batch_tokens, buffer_tokens, seed
        self.start_sequence = 0
        self.stream: ActivationStream | None = None

    def rank_and_world(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        """This rank's shard of the stream, in batches of ``batch_tokens / world_size`` tokens: the step's global
        batch is ``batch_tokens`` tokens on any number of devices."""
        rank, world = self.rank_and_world()
        if self.batch_tokens % world:
            raise ValueError(f"sae.batch_tokens={self.batch_tokens} must divide evenly over the {world} DDP "
                             "processes (it is the global batch)")
        self.stream = ActivationStream(self.backbone, self.train, self.batch_tokens // world, self.buffer_tokens,
                                       self.seed, self.start_sequence, rank, world)
        return DataLoader(self.stream, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        """This rank's share of the held-out sequences (each exactly once over the ranks; the module sums)."""
        rank, world = self.rank_and_world()
        if len(self.heldout) < world:
            raise ValueError(f"activations.heldout_sequences gives {len(self.heldout)} held-out sequences, fewer than "
                             f"the {world} DDP processes that share them")
        batches = list(self.heldout.shard(rank, world).batches(seed=0))
        return DataLoader(batches, batch_size=None, collate_fn=lambda b: b)

    def state_dict(self) -> dict:
        return {"sequences_done": self.stream.sequences_done if self.stream else self.start_sequence}

    def load_state_dict(self, state: dict) -> None:
        self.start_sequence = state["sequences_done"]
