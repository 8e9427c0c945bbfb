"""CAA steering vectors (Rimsky et al. 2024, ``nrimsky/CAA``; paper §3.3): finetune kind ``caa_vector`` on ``ab_item``
rows, which produces a ``steering_vector``. No weight is trained.

For each row the question is chat-formatted as one user turn, the assistant turn is opened and the answer is written
up to its letter (``… <assistant>(A``); the residual stream at layer L is read at that letter token once with the
behaviour-matching answer and once with the other one, and the vector is the mean over rows of (matching − not
matching). CAA's ``generate_vectors.py`` reads the same token (position −2 of ``… (A)``); unlike it, the chat template
is not asked to close the assistant turn, which would put an end-of-turn token after the letter (paper.md §7.8).
Layers are numbered as everywhere here (``hooks.py``): the output of decoder block L counted from 1, so CAA's
``model.model.layers[12]`` (the paper's "layer 12" of Llama's 32 blocks) is L = 13.

The steered model adds ``multiplier · v`` to the layer-L residual stream at every position (CAA's released code, the
default) or only at the positions after the user turn (``positions: after_prompt``, the paper's wording).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
from omegaconf import MISSING
from rich.progress import track
from safetensors.torch import load_file, save_file

from fac_lightning.backbone import Backbone
from fac_lightning.chat import format_chat
from fac_lightning.checks import above, at_least, require, within
from fac_lightning.files import read_json
from fac_lightning.finetune import FINETUNES
from fac_lightning.finetune.base import Finetune
from fac_lightning.finetune.pooled import padded
from fac_lightning.hooks import decoder_layers, edit_residual, run_to_layer


class SteerPositions(str, Enum):
    all = "all"
    after_prompt = "after_prompt"


@dataclass
class CAAVectorConfig:
    kind: str = MISSING
    layer: int | None = None
    """Residual stream read and steered: the output of decoder block ``layer`` (from 1); None = ``depth`` of the
    backbone's blocks, rounded."""
    depth: float = 0.40625
    """Where ``layer: null`` reads, as a share of the blocks: the paper's and CAA's ``layers[12]`` of Llama's 32 is
    block 13 = 13/32 (SmolLM2-135M: 12 of 30; Gemma-3-270M: 7 of 18)."""
    positions: SteerPositions = SteerPositions.all
    """Where the steered model adds the vector: all (CAA's code) | after_prompt (after the user turn: the paper)."""
    normalize_to: float | None = None
    """Rescale the vector to this L2 norm; None keeps the mean difference as it is. CAA's ``normalize_vectors.py``
    gives every behaviour's vector the behaviours' mean norm at the layer (``benchmarks/caa_vector_norms.py``
    prints it), so that one multiplier means the same for each."""
    batch_size: int = 16
    """Sequences per forward pass (reading and scoring)."""
    max_length: int = 512
    """Longest prompt in tokens; a longer one keeps its end (the letter)."""

    def __post_init__(self):
        at_least(self, 1, "layer", "batch_size", "max_length")
        within(self, "depth", 0, 1, low_open=True)
        above(self, 0, "normalize_to")


def answer_prefix(tokenizer, question: str, answer: str = "") -> str:
    """The question as a user turn, the assistant turn opened, then ``answer`` without its closing parenthesis:
    ``(A)`` -> ``… (A`` (so the last token is the letter)."""
    text = format_chat(tokenizer, [{"role": "user", "content": question}], add_generation_prompt=True)
    return text + answer.removesuffix(")")


def encode_left_truncated(tokenizer, text: str, max_length: int) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"][-max_length:]


def resolve_layer(cfg: CAAVectorConfig, backbone: Backbone) -> int:
    blocks = len(decoder_layers(backbone.model))
    layer = cfg.layer if cfg.layer is not None else max(1, round(cfg.depth * blocks))
    if not 1 <= layer <= blocks:
        raise ValueError(f"finetune.layer={layer} is out of range for {backbone.cfg.name!r}: it has {blocks} decoder "
                         f"blocks, so the layer must be in 1..{blocks}")
    return layer


@torch.inference_mode()
def last_token_residuals(backbone: Backbone, sequences: list[list[int]], layer: int, batch_size: int) -> torch.Tensor:
    """(N, D) layer-``layer`` residual stream at each sequence's last token (blocks above it are not run)."""
    out = []
    for start in track(range(0, len(sequences), batch_size), description=f"residuals at layer {layer}"):
        ids_BT, mask_BT = padded(backbone.tokenizer, sequences[start : start + batch_size])
        resid_BTD = run_to_layer(backbone.model, layer, ids_BT.to(backbone.device), mask_BT.to(backbone.device))
        last_B = (mask_BT.sum(1) - 1).to(backbone.device)
        out.append(resid_BTD[torch.arange(len(last_B), device=backbone.device), last_B].float().cpu())
    return torch.cat(out) if out else torch.zeros(0, backbone.d_model)


class SteeringVector:
    """A CAA vector on its backbone: ``steer(multiplier, start_B)`` adds ``multiplier · v`` at layer ``layer`` during
    the forwards inside it (from position ``start_B[b]`` on in row b, with ``positions: after_prompt``)."""

    def __init__(self, backbone: Backbone, vector_D: torch.Tensor, layer: int, cfg: CAAVectorConfig, task: str):
        self.backbone, self.layer, self.cfg, self.task = backbone, layer, cfg, task
        self.vector_D = vector_D.to(backbone.device, backbone.model.dtype)

    @contextmanager
    def steer(self, multiplier: float, start_B: torch.Tensor | None = None) -> Iterator[None]:
        def add(resid_BTD: torch.Tensor) -> torch.Tensor:
            shift_BTD = multiplier * self.vector_D.expand_as(resid_BTD)
            if self.cfg.positions == SteerPositions.after_prompt and start_B is not None:
                positions_T = torch.arange(resid_BTD.shape[1], device=resid_BTD.device)
                shift_BTD = shift_BTD * (positions_T[None, :] >= start_B.to(resid_BTD.device)[:, None])[..., None]
            return resid_BTD + shift_BTD

        if multiplier == 0:
            yield
            return
        with edit_residual(self.backbone.model, self.layer, add):
            yield


@FINETUNES.register("caa_vector", CAAVectorConfig)
class CAAVector(Finetune):
    consumes = ("ab_item",)
    produces = "steering_vector"

    def preflight(self, backbone, shape, cache_dir):
        require(self.cfg.layer is None or self.cfg.layer <= shape.n_layers, "finetune.layer", self.cfg.layer,
                f"must be in 1..{shape.n_layers} ({backbone.name} has {shape.n_layers} decoder blocks)")

    def train(self, rows, backbone, work, context):
        layer, tokenizer = resolve_layer(self.cfg, backbone), backbone.tokenizer
        sides = [[encode_left_truncated(tokenizer, answer_prefix(tokenizer, r["question"], r[key]), self.cfg.max_length)
                  for r in rows] for key in ("answer_matching_behavior", "answer_not_matching_behavior")]
        matching_ND, not_matching_ND = (last_token_residuals(backbone, s, layer, self.cfg.batch_size) for s in sides)
        vector_D = (matching_ND - not_matching_ND).mean(0)
        raw_norm = float(vector_D.norm())
        if self.cfg.normalize_to is not None:
            vector_D = vector_D * (self.cfg.normalize_to / max(raw_norm, 1e-12))
        save_file({"vector": vector_D.contiguous()}, work / "vector.safetensors")
        (work / "vector.json").write_text(json.dumps({
            "layer": layer, "positions": self.cfg.positions.value, "pairs": len(rows), "raw_norm": raw_norm,
            "norm": float(vector_D.norm()), "backbone": backbone.cfg.name, "task": context.task}, indent=2))
        if context.logger:
            context.logger.log_metrics({"steering/vector_norm": raw_norm, "steering/layer": layer})

    def load(self, folder, backbone):
        meta = read_json(Path(folder) / "vector.json")
        vector_D = load_file(Path(folder) / "vector.safetensors")["vector"]
        return SteeringVector(backbone, vector_D, meta["layer"], self.cfg, meta["task"])
