"""G-Vendi (Prismatic Synthesis, Jung et al. 2025, arXiv 2505.20161): the diversity of a data set in a proxy model's
gradient space, the closest gradient-space competitor of FAC.

Per row: the proxy's next-token loss on the row's text (the tokens of its messages, not the chat template's markup),
its gradient with respect to the chosen parameters, a Rademacher random projection to ``dim`` dimensions (seeded,
entries +-1, generated chunk by chunk so the d x dim matrix never exists at once) and unit normalisation. The score
is the Vendi score of those vectors: the exponentiated Shannon entropy of the eigenvalues of the normalised Gram
matrix ``X X^T / N`` (1 for N identical rows, N for N orthogonal ones).

Deviation from the published recipe: Prismatic projects the gradient of *every* parameter of Qwen2.5-0.5B-Instruct
(on a GPU, with TRAK's CUDA projector); on the 2-core CPU this framework targets, the default takes the gradient of
the last ``last_parameters`` tensors matching ``parameters`` (the backbone's last two MLP down-projections, 1.8 M
values for SmolLM2-135M). Widen ``parameters`` / ``last_parameters`` (or name another ``proxy``) where compute allows.
"""

import re
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from fac_lightning.artifacts import NOT_IN_KEY
from fac_lightning.checks import at_least, require

VERSION = 1
"""Part of every G-Vendi artifact's key (``plan.RunPlan.g_vendi``): bump it when the measurement changes."""


@dataclass
class GradientConfig:
    """Which gradients represent a row (G-Vendi, and Prismatic Synthesis's clusters)."""

    proxy: str | None = None
    """The causal LM whose loss gradient represents a row: None = the backbone; else a hub id or a local folder
    loaded with transformers (Prismatic: Qwen/Qwen2.5-0.5B-Instruct)."""
    parameters: str = r"mlp\.down_proj\.weight$"
    """Regular expression on the proxy's parameter names; the gradient is taken for the matching tensors."""
    last_parameters: int | None = 2
    """Only the last this many matching tensors, in the model's order (None = all of them)."""
    dim: int = 1024
    """Dimensions of the random projection (Prismatic: 1,024)."""
    projection_seed: int = 0
    """Seed of the Rademacher projection (the same seed projects every data set the same way)."""
    max_length: int = 512
    """Tokens of a row the proxy reads."""
    batch_rows: int = field(default=128, metadata=NOT_IN_KEY)
    """Rows whose raw gradients are projected together (memory: batch_rows x gradient size floats)."""
    chunk: int = field(default=65536, metadata=NOT_IN_KEY)
    """Gradient coordinates per generated block of the projection."""

    def __post_init__(self):
        at_least(self, 1, "last_parameters", "dim", "max_length", "batch_rows", "chunk")
        try:
            re.compile(self.parameters)
        except re.error as e:
            require(False, "parameters", self.parameters, f"not a regular expression ({e})")


@dataclass
class GVendiConfig(GradientConfig):
    """The G-Vendi measurement of every row set a run trains on (root key ``g_vendi``)."""

    enabled: bool = field(default=True, metadata=NOT_IN_KEY)
    """False: no G-Vendi (the leaderboard leaves the column out)."""
    max_rows: int | None = 1000
    """At most this many rows are measured (a seeded sample; None = all): the score grows with N, so compare sets of
    one budget."""

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "max_rows")


def vendi_score(x_ND: np.ndarray) -> float:
    """exp(entropy) of the eigenvalues of X X^T / N for unit-normalised rows of ``x_ND`` (computed from the D x D
    matrix X^T X / N, which has the same non-zero eigenvalues)."""
    unit_ND = x_ND / np.linalg.norm(x_ND, axis=1, keepdims=True).clip(1e-12)
    n = len(unit_ND)
    if n == 0:
        return 0.0
    small_NN_or_DD = unit_ND @ unit_ND.T if n <= unit_ND.shape[1] else unit_ND.T @ unit_ND
    eig = np.linalg.eigvalsh(small_NN_or_DD.astype(np.float64) / n)
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


class GradientSketch:
    """Unit-normalised random projections of a proxy model's per-row loss gradients."""

    def __init__(self, model, tokenizer, cfg: GradientConfig, key: str = "g_vendi"):
        """``key``: where ``cfg`` sits in the run config (named by errors)."""
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        matching = [(n, p) for n, p in model.named_parameters() if re.search(cfg.parameters, n)]
        require(bool(matching), f"{key}.parameters", cfg.parameters, "matches no parameter of the proxy model "
                f"(its last ones: {[n for n, _ in model.named_parameters()][-3:]})")
        self.params = matching[-cfg.last_parameters:] if cfg.last_parameters else matching
        self.size = sum(p.numel() for _, p in self.params)

    @classmethod
    def for_backbone(cls, cfg: GradientConfig, backbone, key: str = "g_vendi") -> "GradientSketch":
        """The sketch of ``cfg.proxy`` (None: the already loaded backbone)."""
        if cfg.proxy is None:
            return cls(backbone.model, backbone.tokenizer, cfg, key)
        tokenizer = AutoTokenizer.from_pretrained(cfg.proxy)
        model = AutoModelForCausalLM.from_pretrained(cfg.proxy, dtype=torch.float32).to(backbone.device).eval()
        return cls(model, tokenizer, cfg, key)

    def gradient(self, conversation) -> torch.Tensor:
        """The flattened loss gradient (float32) of one conversation's message tokens."""
        # imported here, not at the top: config.py imports this module, and the scorer imports config
        from fac_lightning.features.scorer import role_spans

        ids, roles = role_spans(self.tokenizer, conversation, self.cfg.max_length)
        device = next(self.model.parameters()).device
        ids_1T = torch.tensor([ids], device=device)
        labels_1T = torch.tensor([[t if r in ("user", "assistant") else -100 for t, r in zip(ids, roles)]],
                                 device=device)
        with torch.enable_grad():
            loss = self.model(input_ids=ids_1T, labels=labels_1T).loss
            grads = torch.autograd.grad(loss, [p for _, p in self.params], allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float().cpu()
                          for g, (_, p) in zip(grads, self.params, strict=True)])

    def project(self, grads_BG: torch.Tensor) -> torch.Tensor:
        """grads_BG @ R for the seeded Rademacher R (G x dim), generated chunk by chunk."""
        generator = torch.Generator().manual_seed(self.cfg.projection_seed)
        out_BP = torch.zeros(len(grads_BG), self.cfg.dim)
        for start in range(0, grads_BG.shape[1], self.cfg.chunk):
            stop = min(start + self.cfg.chunk, grads_BG.shape[1])
            signs_CP = torch.randint(0, 2, (stop - start, self.cfg.dim), generator=generator, dtype=torch.int8)
            out_BP += grads_BG[:, start:stop] @ (signs_CP.float() * 2 - 1)
        return out_BP

    def __call__(self, conversations, desc: str = "gradients") -> np.ndarray:
        """(N, dim) unit-normalised projected gradients."""
        required = [p.requires_grad for _, p in self.params]
        for _, p in self.params:
            p.requires_grad_(True)
        out = []
        try:
            bar = tqdm(total=len(conversations), desc=desc, disable=len(conversations) < 32)
            for start in range(0, len(conversations), self.cfg.batch_rows):
                batch = conversations[start : start + self.cfg.batch_rows]
                grads_BG = torch.stack([self.gradient(c) for c in batch])
                bar.update(len(batch))
                out.append(self.project(grads_BG))
            bar.close()
        finally:
            for (_, p), flag in zip(self.params, required, strict=True):
                p.requires_grad_(flag)
        if not out:
            return np.zeros((0, self.cfg.dim), dtype=np.float32)
        x_NP = torch.cat(out)
        return (x_NP / x_NP.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()


def g_vendi(sketch: GradientSketch, conversations, max_rows: int | None = None, seed: int = 0) -> float:
    """The Vendi score of the rows' projected gradients (at most ``max_rows`` rows, a seeded sample)."""
    if max_rows is not None and len(conversations) > max_rows:
        keep = sorted(np.random.default_rng(seed).choice(len(conversations), max_rows, replace=False))
        conversations = [conversations[i] for i in keep]
    return vendi_score(sketch(conversations, desc="G-Vendi gradients"))
