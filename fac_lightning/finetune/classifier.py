"""Toxicity classifier on the backbone (2 labels), as LightningModules.

Input = the chat-formatted user turn; the representation is the backbone's last non-padding token after the final
norm, scored by a linear head, exactly as transformers' ``*ForSequenceClassification`` does.

- ``finetune.method=lora``: peft LoRA on the attention and MLP projections, head trainable (paper: r=8, alpha=16,
  dropout 0.1, 3 epochs, lr 5e-5, effective batch 16).
- ``finetune.method=head_only``: frozen backbone, only the head trains (paper: 15 epochs, lr 8e-5). Because the
  backbone is frozen and in eval mode, its pooled states are computed once and cached, and the head trains on them:
  the same optimisation problem at a fraction of the cost.
"""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn
from transformers import AutoModelForSequenceClassification

from fac_lightning.activations import collate
from fac_lightning.chat import encode_chat
from fac_lightning.config import FinetuneConfig


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return [encode_chat(tokenizer, [{"role": "user", "content": t}], max_length) for t in texts]


def padded(tokenizer, sequences: list[list[int]]):
    batch = collate(sequences, tokenizer.pad_token_id, torch.zeros(0, dtype=torch.long), 0)
    return batch.input_ids_BT, batch.attention_mask_BT


_POOLED: dict[tuple, torch.Tensor] = {}
"""Pooled states computed in this process, by (model path, dtype, token ids): in a sweep (one process) the frozen
backbone runs over the benchmark and the safe training examples once, not once per run."""


@torch.inference_mode()
def pooled_states(backbone, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
    """(N, D) final-norm hidden state of each sequence's last token (what the classification head sees); batches are
    formed by length to limit padding."""
    model_key = (backbone.path, str(backbone.model.dtype))
    todo = sorted({tuple(s) for s in sequences} - {ids for key, ids in _POOLED if key == model_key}, key=len)
    for start in track(range(0, len(todo), batch_size), description="pooled states"):
        rows = [list(ids) for ids in todo[start : start + batch_size]]
        ids_BT, mask_BT = padded(backbone.tokenizer, rows)
        hidden_BTD = backbone.model.model(input_ids=ids_BT.to(backbone.device),
                                          attention_mask=mask_BT.to(backbone.device)).last_hidden_state
        last_B = mask_BT.sum(1) - 1
        states_BD = hidden_BTD[torch.arange(len(last_B)), last_B.to(backbone.device)].float().cpu()
        for ids, state_D in zip(todo[start : start + batch_size], states_BD, strict=True):
            _POOLED[model_key, ids] = state_D
    return torch.stack([_POOLED[model_key, tuple(s)] for s in sequences])


class HeadOnlyClassifier(pl.LightningModule):
    """Linear head (no bias, as HF's ``score``) trained on cached pooled states."""

    def __init__(self, d_model: int, cfg: FinetuneConfig):
        super().__init__()
        self.cfg = cfg
        self.score = nn.Linear(d_model, 2, bias=False)
        nn.init.normal_(self.score.weight, std=0.02)

    def training_step(self, batch, batch_idx):
        h_BD, y_B = batch
        loss = F.cross_entropy(self.score(h_BD), y_B)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    @torch.no_grad()
    def prob_toxic(self, h_ND: torch.Tensor) -> torch.Tensor:
        return self.score(h_ND).softmax(-1)[:, 1]


class LoRAClassifier(pl.LightningModule):
    """The backbone as ``AutoModelForSequenceClassification`` with peft LoRA adapters and a trainable head."""

    def __init__(self, model_path: str, pad_token_id: int, cfg: FinetuneConfig, adapter_dir: str | None = None):
        """New adapters from ``cfg``, or trained ones loaded from ``adapter_dir`` (peft's format)."""
        super().__init__()
        from peft import LoraConfig, PeftModel, TaskType, get_peft_model

        self.cfg = cfg
        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2, dtype=torch.float32)
        model.config.pad_token_id = pad_token_id
        if adapter_dir is not None:
            self.model = PeftModel.from_pretrained(model, adapter_dir)
            return
        lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                          lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules))
        self.model = get_peft_model(model, lora)
        self.model.train()  # from_pretrained returns eval mode, and Lightning keeps it: LoRA dropout would be off

    def training_step(self, batch, batch_idx):
        ids_BT, mask_BT, y_B = batch
        loss = self.model(input_ids=ids_BT, attention_mask=mask_BT, labels=y_B).loss
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    @torch.no_grad()
    def prob_toxic(self, tokenizer, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
        self.model.eval()
        out = []
        for start in range(0, len(sequences), batch_size):
            ids_BT, mask_BT = padded(tokenizer, sequences[start : start + batch_size])
            out.append(self.model(input_ids=ids_BT, attention_mask=mask_BT).logits.softmax(-1)[:, 1])
        return torch.cat(out)
