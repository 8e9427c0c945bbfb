"""TopK sparse autoencoder (Gao et al. 2024): z = TopK(ReLU(W_enc (x - b_dec) + b_enc)), x_hat = W_dec^T z + b_dec.

Shapes: B tokens, D model width, F latents, K active latents per token. The encoder's backward pass only touches
the K selected latents per token (its weight gradient is an ``embedding_bag`` over the selections sorted by latent)
and the decoder is a sparse gather (``embedding_bag``), so a step costs one dense (B, D) x (D, F) matmul plus
O(B K D) work, with no (B, K, D) tensor formed.
"""

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from fac_lightning.artifacts import NOT_IN_KEY
from fac_lightning.checks import above, at_least, require
from fac_lightning.files import read_json
from fac_lightning.sae import SAE_ARCHITECTURES


class EncoderOutput(NamedTuple):
    acts_BK: torch.Tensor
    """Values of the K largest ReLU pre-activations per token."""
    idx_BK: torch.Tensor
    """Their latent indices."""


class ForwardOutput(NamedTuple):
    x_hat_BD: torch.Tensor
    acts_BK: torch.Tensor
    idx_BK: torch.Tensor
    fvu: torch.Tensor
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch."""
    normalized_mse: torch.Tensor
    """mean over tokens of ||x - x_hat||^2 / ||x||^2 (the paper's training loss)."""
    auxk: torch.Tensor
    """AuxK loss (0 when no latent is dead or no dead mask was given)."""


def per_latent_sums(idx_BK: torch.Tensor, weights_BK: torch.Tensor, rows_BD: torch.Tensor,
                    num_latents: int) -> torch.Tensor:
    """(F, D): for each latent f, the sum over the (token b, slot k) with ``idx_BK[b, k] = f`` of
    ``weights_BK[b, k] * rows_BD[b]``, i.e. the weight gradient of a layer that only the K selected latents per token
    touch. One ``embedding_bag`` over the (b, k) pairs sorted by latent, a bag per latent: no (B, K, D) tensor is
    formed, and nothing syncs with the host (the bag offsets come from ``searchsorted``, not from counts)."""
    latent_N, order_N = idx_BK.flatten().sort()
    offsets_F = torch.searchsorted(latent_N, torch.arange(num_latents, device=idx_BK.device))
    return F.embedding_bag(order_N // idx_BK.shape[1], rows_BD, offsets_F, mode="sum",
                           per_sample_weights=weights_BK.flatten()[order_N])


class _TopKEncode(torch.autograd.Function):
    """TopK of a linear map, then ReLU of the K kept values, with a backward pass that reaches only the K selected
    latents. TopK before ReLU keeps the same latents as ReLU before TopK (ReLU is monotone; where fewer than K are
    positive, the others are 0 either way) and saves a pass over the (B, F) pre-activations."""

    @staticmethod
    def forward(ctx, x_BD, W_enc_FD, b_enc_F, k: int):
        pre_BK, idx_BK = torch.addmm(b_enc_F, x_BD, W_enc_FD.T).topk(k, dim=-1, sorted=False)
        acts_BK = F.relu(pre_BK)
        ctx.save_for_backward(x_BD, W_enc_FD, acts_BK, idx_BK)
        return acts_BK, idx_BK

    @staticmethod
    def backward(ctx, grad_acts_BK, _grad_idx):
        x_BD, W_enc_FD, acts_BK, idx_BK = ctx.saved_tensors
        grad_pre_BK = (grad_acts_BK * (acts_BK > 0)).to(W_enc_FD.dtype)  # ReLU's derivative; float32 under autocast
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(idx_BK, W_enc_FD, per_sample_weights=grad_pre_BK, mode="sum")
        if ctx.needs_input_grad[1]:
            grad_W = per_latent_sums(idx_BK, grad_pre_BK, x_BD, W_enc_FD.shape[0])
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(W_enc_FD.shape[0], dtype=grad_pre_BK.dtype, device=grad_pre_BK.device)
            grad_b.index_add_(0, idx_BK.flatten(), grad_pre_BK.flatten())
        return grad_x, grad_W, grad_b, None


class SAELoss(str, Enum):
    fvu = "fvu"
    normalized_mse = "normalized_mse"


class BDecInit(str, Enum):
    mean = "mean"
    geometric_median = "geometric_median"
    zeros = "zeros"


@dataclass
class TopKConfig:
    architecture: str = "topk"
    """Registered SAE architecture (``fac_lightning.sae``)."""
    k: int = 32
    """Active latents per token. sparsify / Gao et al. default 32; paper: 20."""
    expansion_factor: int = 16
    """Latents = expansion_factor * d_model when ``num_latents`` is 0. Paper: 2^16 / 4096 = 16."""
    num_latents: int = 0
    """Dictionary size; 0 = expansion_factor * d_model."""
    init_b_dec: BDecInit = BDecInit.mean
    """mean (sparsify; measured on par with sparsify's FVU) | geometric_median (Gao et al., dictionary_learning) |
    zeros (SAELens)."""
    normalize_decoder: bool = True
    """Unit-norm decoder rows after every step, with the gradient component parallel to them removed first."""
    loss: SAELoss = SAELoss.fvu
    """fvu = sum||x-x_hat||^2 / sum||x-mean||^2 per batch (sparsify) | normalized_mse = mean_t ||x-x_hat||^2/||x||^2
    (paper code, OpenAI)."""
    auxk_coef: float = 0.03125
    """AuxK loss weight, 1/32 (Gao et al. App. A.2, dictionary_learning). Paper: 0 (off)."""
    k_aux: int = 0
    """Dead latents used by AuxK; 0 = d_model // 2 (sparsify, dictionary_learning)."""
    dead_tokens: int = 10_000_000
    """A latent is dead after this many tokens without firing (Gao et al., sparsify, dictionary_learning)."""
    lr: float | None = None
    """Adam learning rate; None = 2e-4 / sqrt(num_latents / 2^14) (Gao et al. Fig. 3, sparsify). Paper: 1e-3."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 6.25e-10
    """OpenAI sparse_autoencoder and the paper's code."""
    lr_warmup_steps: int = 0
    """Linear warm-up steps (sparsify: 1000 for long runs; 0 keeps tiny CPU runs simple)."""
    batch_tokens: int = 4096
    """Tokens per optimizer step (SAELens 4096; sparsify 65,536; paper 512 sequences ~ 90k tokens)."""
    train_tokens: int = 2_000_000
    """Token budget; the run takes train_tokens // batch_tokens steps."""
    val_every_steps: int = field(default=200, metadata=NOT_IN_KEY)
    """Held-out FVU / CE-loss-recovered every this many steps (and at the end)."""
    checkpoint_every_steps: int = field(default=100, metadata=NOT_IN_KEY)
    """Lightning checkpoint cadence; a killed run resumes from the last one."""
    seed: int = 0
    """SAE initialisation and data order. Separate from the run ``seed`` so that a sweep over seeds (synthesis,
    finetune) trains the SAE once."""

    def __post_init__(self):  # k against the backbone's width: stages/preflight.py
        at_least(self, 1, "k", "expansion_factor", "dead_tokens", "batch_tokens", "train_tokens", "val_every_steps",
                 "checkpoint_every_steps")
        at_least(self, 0, "num_latents", "k_aux", "auxk_coef", "lr_warmup_steps")
        require(not self.num_latents or self.k <= self.num_latents, "k", self.k, "must be <= sae.num_latents",
                {"num_latents": self.num_latents})
        above(self, 0, "lr", "adam_eps")
        require(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas), "adam_betas",
                list(self.adam_betas), "must be two numbers in [0, 1)")


@SAE_ARCHITECTURES.register("topk", TopKConfig)
class TopKSAE(nn.Module):

    def __init__(self, d_in: int, num_latents: int, k: int, k_aux: int = 0):
        super().__init__()
        self.d_in, self.num_latents, self.k = d_in, num_latents, k
        self.k_aux = k_aux or d_in // 2
        # Encoder at nn.Linear's default scale (rows of norm ~0.58), decoder = the same directions at unit norm
        # (Gao et al.'s transpose init, as sparsify does it). Unit-norm encoder rows trained markedly worse at small
        # budgets: held-out FVU 0.568 vs 0.468 after 48 steps on the same activations (benchmarks/RESULTS.md).
        W_enc_FD = torch.empty(num_latents, d_in)
        nn.init.kaiming_uniform_(W_enc_FD, a=5**0.5)
        self.W_enc = nn.Parameter(W_enc_FD)
        self.W_dec = nn.Parameter(W_enc_FD / W_enc_FD.norm(dim=1, keepdim=True))
        self.b_enc = nn.Parameter(torch.zeros(num_latents))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def pre_acts(self, x_BD: torch.Tensor) -> torch.Tensor:
        """Dense ReLU pre-activations (B, F), before TopK (used for feature scoring without TopK)."""
        return F.relu(F.linear(x_BD - self.b_dec, self.W_enc, self.b_enc))

    def encode(self, x_BD: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(*_TopKEncode.apply(x_BD - self.b_dec, self.W_enc, self.b_enc, self.k))

    def decode(self, acts_BK: torch.Tensor, idx_BK: torch.Tensor) -> torch.Tensor:
        """Under a bf16 autocast (``trainer.precision=bf16-mixed``) the encoder's matmul and TopK run in bf16; the
        decoder gathers its float32 rows with the activations cast back to float32 (as sparsify does)."""
        return F.embedding_bag(idx_BK, self.W_dec, per_sample_weights=acts_BK.to(self.W_dec.dtype), mode="sum") + self.b_dec

    def forward(self, x_BD: torch.Tensor, dead_F: torch.Tensor | None = None) -> ForwardOutput:
        acts_BK, idx_BK = self.encode(x_BD)
        x_hat_BD = self.decode(acts_BK, idx_BK)
        err_BD = x_hat_BD - x_BD
        total_var = (x_BD - x_BD.mean(0)).pow(2).sum()
        fvu = err_BD.pow(2).sum() / total_var
        normalized_mse = (err_BD.pow(2).sum(-1) / x_BD.pow(2).sum(-1).clamp_min(1e-12)).mean()
        auxk = self.auxk_loss(x_BD, err_BD, total_var, dead_F) if dead_F is not None else x_BD.new_zeros(())
        return ForwardOutput(x_hat_BD, acts_BK, idx_BK, fvu, normalized_mse, auxk)

    def auxk_loss(self, x_BD, err_BD, total_var, dead_F) -> torch.Tensor:
        """Reconstruct the detached residual with the top-k_aux *dead* latents (Gao et al. App. A.2). The decode has
        no b_dec (sparsify PR #134) and gradients reach the dead latents' encoder rows, which is what revives them."""
        dead_idx = dead_F.nonzero().squeeze(-1)
        if len(dead_idx) == 0:
            return x_BD.new_zeros(())
        k_aux = min(self.k_aux, len(dead_idx))
        pre_BN = F.relu(F.linear(x_BD - self.b_dec, self.W_enc[dead_idx], self.b_enc[dead_idx]))
        acts_BK, local_BK = pre_BN.topk(k_aux, dim=-1, sorted=False)
        e_hat_BD = F.embedding_bag(dead_idx[local_BK], self.W_dec, per_sample_weights=acts_BK.to(self.W_dec.dtype),
                                   mode="sum")
        scale = min(len(dead_idx) / self.k_aux, 1.0)
        return scale * (e_hat_BD + err_BD.detach()).pow(2).sum() / total_var  # target is -(x_hat - x) = residual

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the gradient component parallel to each (unit) decoder row, so Adam does not fight the
        renormalisation (Gao et al.; sparsify)."""
        if self.W_dec.grad is None:
            return
        parallel_F = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
        self.W_dec.grad -= parallel_F * self.W_dec

    def config(self) -> dict:
        return {"architecture": self.name, "d_in": self.d_in, "num_latents": self.num_latents,
                "k": self.k, "k_aux": self.k_aux}

    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write ``cfg.json`` (architecture + ``extra``, e.g. backbone, layer, prefix rule) and ``sae.safetensors``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, folder / "sae.safetensors")
        (folder / "cfg.json").write_text(json.dumps({**self.config(), **(extra or {})}, indent=2))

    @classmethod
    def from_config(cls, cfg: dict) -> "TopKSAE":
        return cls(cfg["d_in"], cfg["num_latents"], cfg["k"], cfg.get("k_aux", 0))


def load_sae(folder: str | Path, device: str | torch.device = "cpu") -> tuple[TopKSAE, dict]:
    """Load an SAE folder written by ``save``; returns the SAE (eval mode) and its ``cfg.json``."""
    from fac_lightning.artifacts import verify_artifact
    from fac_lightning.sae import sae_class

    folder = Path(folder)
    if not (folder / "cfg.json").exists():
        raise FileNotFoundError(f"{folder} is not an SAE folder (no cfg.json)")
    verify_artifact(folder, "SAE", "An SAE is not retrained behind your back")
    cfg = read_json(folder / "cfg.json")
    sae = sae_class(cfg["architecture"]).from_config(cfg)
    sae.load_state_dict(load_file(folder / "sae.safetensors", device=str(device)))
    return sae.to(device).eval(), cfg
