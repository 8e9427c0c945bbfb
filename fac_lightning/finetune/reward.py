"""Bradley-Terry reward models on the backbone for ``preference_pair`` rows: finetune kinds ``reward_head`` and
``reward_lora``; both produce a ``reward_model`` (``score(conversations)`` = one scalar reward each).

Semantics of TRL's ``RewardTrainer``: a row is TRL's conversational preference format (``prompt``, ``chosen``,
``rejected`` message lists, optional ``margin``); each side is the chat-templated ``prompt + answer``, truncated from
the left to ``max_length`` tokens (the answer, at the end, is what is judged); the reward is a linear head (one
output, no bias) on the final-norm state of the last non-padding token, as ``AutoModelForSequenceClassification
(num_labels=1)``; the loss is ``-log σ(r_chosen - r_rejected - margin)``, plus ``center_rewards_coefficient *
mean((r_chosen + r_rejected)²)`` when set. AdamW with a cosine schedule after a linear warm-up.

- ``reward_lora``: peft LoRA on the attention and MLP projections, head trainable (paper §3.2: r=16, alpha=32,
  dropout 0.1, 1 epoch, lr 8e-5, weight decay 0.01, effective batch 8, cosine, warm-up 0.1).
- ``reward_head``: frozen backbone, only the head trains (paper: 5 epochs, lr 8e-5, wd 0.01, batch 1 x 4). Its
  pooled states are computed once and cached (``finetune/pooled.py``), as for ``classifier_head``.
"""

from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import TensorDataset

from fac_lightning.backbone import Backbone
from fac_lightning.chat import encode_chat
from fac_lightning.checks import at_least, within
from fac_lightning.data.examples import Conversation
from fac_lightning.finetune import FINETUNES
from fac_lightning.finetune.base import (
    AdapterCheckpoints,
    Finetune,
    FinetuneConfig,
    LoraFields,
    fit_finetune,
    lora_sequence_model,
    scheduled_adamw,
)
from fac_lightning.finetune.pooled import padded, pooled_states
from fac_lightning.finetune.resume import shuffled_batches


@dataclass
class RewardConfig(FinetuneConfig):
    lr: float = 8e-5
    weight_decay: float = 0.01
    max_length: int = 1024
    """Tokens per side (prompt + answer), cut from the left (paper: 1024, left truncation)."""
    warmup_ratio: float = 0.1
    """Share of the optimizer steps with a linear warm-up, before the cosine decay."""
    center_rewards_coefficient: float | None = None
    """TRL's reward centring (Eisenstein et al. 2023): adds coef * mean((r_chosen + r_rejected)²); None = off."""

    def __post_init__(self):
        super().__post_init__()
        within(self, "warmup_ratio", 0, 1)
        at_least(self, 0, "center_rewards_coefficient")


@dataclass
class RewardHeadConfig(RewardConfig):
    """Paper head-only setting: 5 epochs, lr 8e-5, weight decay 0.01, batch 1 x accumulation 4."""

    epochs: int = 5
    batch_size: int = 1
    accumulate_grad_batches: int = 4


@dataclass
class RewardLoraConfig(RewardConfig, LoraFields):
    """Paper LoRA setting: r=16, alpha=32, dropout 0.1 on every attention and MLP projection; 1 epoch, batch 2 x 4."""

    epochs: int = 1
    batch_size: int = 2
    accumulate_grad_batches: int = 4
    lora_r: int = 16
    lora_alpha: int = 32

    def __post_init__(self):
        super().__post_init__()
        self.check_lora()


def encode_sides(tokenizer, conversations: list[Conversation], max_length: int) -> list[list[int]]:
    """Chat-templated token ids, left-truncated to ``max_length``."""
    return [encode_chat(tokenizer, c)[-max_length:] for c in conversations]


def pair_sides(rows: list[dict]) -> tuple[list[Conversation], list[Conversation], torch.Tensor]:
    """(prompt + chosen, prompt + rejected, margin) of each row."""
    chosen = [r["prompt"] + r["chosen"] for r in rows]
    rejected = [r["prompt"] + r["rejected"] for r in rows]
    return chosen, rejected, torch.tensor([float(r.get("margin", 0.0)) for r in rows])


def bradley_terry_loss(chosen_B: torch.Tensor, rejected_B: torch.Tensor, margin_B: torch.Tensor,
                       center_rewards_coefficient: float | None) -> torch.Tensor:
    loss = -F.logsigmoid(chosen_B - rejected_B - margin_B).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * torch.mean((chosen_B + rejected_B) ** 2)
    return loss


class RewardModule(pl.LightningModule):
    """What both kinds share: the Bradley-Terry step on (chosen, rejected) rewards and AdamW + cosine warm-up."""

    cfg: RewardConfig

    def rewards(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(r_chosen_B, r_rejected_B, margin_B) of a batch."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        chosen_B, rejected_B, margin_B = self.rewards(batch)
        loss = bradley_terry_loss(chosen_B, rejected_B, margin_B, self.cfg.center_rewards_coefficient)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/accuracy", (chosen_B > rejected_B).float().mean())
        return loss

    def configure_optimizers(self):
        return scheduled_adamw(self, self.cfg, "cosine", self.cfg.warmup_ratio)


class HeadOnlyReward(RewardModule):
    """Linear head (one output, no bias, as HF's ``score``) trained on cached pooled states."""

    def __init__(self, d_model: int, cfg: RewardHeadConfig):
        super().__init__()
        self.cfg = cfg
        self.score = nn.Linear(d_model, 1, bias=False)
        nn.init.normal_(self.score.weight, std=0.02)

    def rewards(self, batch):
        chosen_BD, rejected_BD, margin_B = batch
        return self.score(chosen_BD)[:, 0], self.score(rejected_BD)[:, 0], margin_B

    @torch.no_grad()
    def reward(self, h_ND: torch.Tensor) -> torch.Tensor:
        return self.score(h_ND)[:, 0]


class LoRAReward(RewardModule, AdapterCheckpoints):
    """The backbone as ``AutoModelForSequenceClassification(num_labels=1)`` with peft LoRA adapters and a trainable
    head; a batch is TRL's ``DataCollatorForPreference`` output (the chosen sides, then the rejected sides)."""

    def __init__(self, model_path: str, tokenizer, cfg: RewardLoraConfig, adapter_dir: str | None = None):
        """New adapters from ``cfg``, or trained ones loaded from ``adapter_dir`` (peft's format)."""
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.model = lora_sequence_model(model_path, tokenizer.pad_token_id, 1, cfg, adapter_dir)

    def forward_rewards(self, ids_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids_BT, attention_mask=mask_BT).logits[:, 0]

    def rewards(self, batch):
        rewards_2B = self.forward_rewards(batch["input_ids"], batch["attention_mask"])
        chosen_B, rejected_B = rewards_2B.chunk(2)
        return chosen_B, rejected_B, batch["margin"]

    @torch.no_grad()
    def reward(self, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
        self.model.eval()
        out = []
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # batches by length: less padding
        for start in range(0, len(order), batch_size):
            batch = [sequences[i] for i in order[start : start + batch_size]]
            out.append(self.forward_rewards(*padded(self.tokenizer, batch)))
        rewards_N = torch.empty(len(sequences))
        rewards_N[order] = torch.cat(out) if out else torch.empty(0)
        return rewards_N


class RewardModel:
    """A trained reward model: ``score(conversations)`` = the scalar reward of each conversation (prompt + answer)."""

    def __init__(self, backbone: Backbone, cfg: RewardConfig, reward):
        self.backbone, self.cfg, self._reward = backbone, cfg, reward

    def score(self, conversations: list[Conversation]) -> np.ndarray:
        return self._reward(encode_sides(self.backbone.tokenizer, conversations, self.cfg.max_length)).numpy()


class RewardFinetune(Finetune):
    consumes = ("preference_pair",)
    produces = "reward_model"


@FINETUNES.register("reward_head", RewardHeadConfig)
class RewardHead(RewardFinetune):
    def train(self, rows, backbone, work, context):
        chosen, rejected, margin_B = pair_sides(rows)
        tokenizer, batch = backbone.tokenizer, self.cfg.inference_batch_size
        chosen_ND = pooled_states(backbone, encode_sides(tokenizer, chosen, self.cfg.max_length), batch)
        rejected_ND = pooled_states(backbone, encode_sides(tokenizer, rejected, self.cfg.max_length), batch)
        module = HeadOnlyReward(backbone.d_model, self.cfg)
        data = shuffled_batches(TensorDataset(chosen_ND, rejected_ND, margin_B), self.cfg.batch_size, context.seed)
        if fit_finetune(self.cfg, module, data, work, context):
            save_file(module.score.state_dict(), work / "head.safetensors")

    def load(self, folder, backbone):
        module = HeadOnlyReward(backbone.d_model, self.cfg)
        module.score.load_state_dict(load_file(folder / "head.safetensors"))
        return RewardModel(backbone, self.cfg, lambda sequences: module.reward(
            pooled_states(backbone, sequences, self.cfg.inference_batch_size)))


@FINETUNES.register("reward_lora", RewardLoraConfig)
class RewardLora(RewardFinetune):
    imports = ("trl", "peft")
    distributed = True

    def train(self, rows, backbone, work, context):
        chosen, rejected, margin_B = pair_sides(rows)
        tokenizer = backbone.tokenizer
        from trl.trainer.reward_trainer import DataCollatorForPreference

        module = LoRAReward(backbone.path, tokenizer, self.cfg)
        items = [{"chosen_ids": c, "rejected_ids": r, "margin": m} for c, r, m in zip(
            encode_sides(tokenizer, chosen, self.cfg.max_length), encode_sides(tokenizer, rejected, self.cfg.max_length),
            margin_B.tolist(), strict=True)]
        data = shuffled_batches(items, self.cfg.batch_size, context.seed,
                                collate_fn=DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id))
        if fit_finetune(self.cfg, module, data, work, context):
            module.model.save_pretrained(work / "adapter")

    def load(self, folder, backbone):
        module = LoRAReward(backbone.path, backbone.tokenizer, self.cfg, str(folder / "adapter"))
        return RewardModel(backbone, self.cfg, lambda sequences: module.reward(
            sequences, self.cfg.inference_batch_size))
