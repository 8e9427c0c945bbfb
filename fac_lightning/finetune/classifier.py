"""Text classifiers on the backbone (2 labels) for ``query`` rows: finetune kinds ``classifier_head`` and
``classifier_lora``; both produce a ``classifier`` model (``predict_proba(texts)`` = P(label 1)).

Input = the chat-formatted user turn; the representation is the backbone's last non-padding token after the final
norm, scored by a linear head, exactly as transformers' ``*ForSequenceClassification`` does.

- ``classifier_lora``: peft LoRA on the attention and MLP projections, head trainable (paper: r=8, alpha=16,
  dropout 0.1, 3 epochs, lr 5e-5, effective batch 16).
- ``classifier_head``: frozen backbone, only the head trains (paper: 15 epochs, lr 8e-5). Because the backbone is
  frozen and in eval mode, its pooled states are computed once and cached, and the head trains on them: the same
  optimisation problem at a fraction of the cost.
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
from fac_lightning.finetune import FINETUNES
from fac_lightning.finetune.base import (
    AdapterCheckpoints,
    Finetune,
    FinetuneConfig,
    LoraFields,
    fit_finetune,
    lora_sequence_model,
)
from fac_lightning.finetune.pooled import padded, pooled_states
from fac_lightning.finetune.resume import shuffled_batches


@dataclass
class ClassifierHeadConfig(FinetuneConfig):
    """Paper Table 13 setting: 15 epochs, lr 8e-5, batch 1 x accumulation 4."""

    epochs: int = 15
    lr: float = 8e-5
    batch_size: int = 1
    accumulate_grad_batches: int = 4


@dataclass
class ClassifierLoraConfig(FinetuneConfig, LoraFields):
    """Paper Table 1 setting: r=8, alpha=16, dropout 0.1 on q,k,v,o,gate,up,down; 3 epochs, lr 5e-5, batch 4 x 4."""

    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 4
    accumulate_grad_batches: int = 4

    def __post_init__(self):
        super().__post_init__()
        self.check_lora()


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return [encode_chat(tokenizer, [{"role": "user", "content": t}], max_length) for t in texts]


class HeadOnlyClassifier(pl.LightningModule):
    """Linear head (no bias, as HF's ``score``) trained on cached pooled states."""

    def __init__(self, d_model: int, cfg: ClassifierHeadConfig):
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
    def prob_positive(self, h_ND: torch.Tensor) -> torch.Tensor:
        return self.score(h_ND).softmax(-1)[:, 1]


class LoRAClassifier(AdapterCheckpoints):
    """The backbone as ``AutoModelForSequenceClassification`` with peft LoRA adapters and a trainable head."""

    def __init__(self, model_path: str, pad_token_id: int, cfg: ClassifierLoraConfig, adapter_dir: str | None = None):
        """New adapters from ``cfg``, or trained ones loaded from ``adapter_dir`` (peft's format)."""
        super().__init__()
        self.cfg = cfg
        self.model = lora_sequence_model(model_path, pad_token_id, 2, cfg, adapter_dir)

    def training_step(self, batch, batch_idx):
        ids_BT, mask_BT, y_B = batch
        loss = self.model(input_ids=ids_BT, attention_mask=mask_BT, labels=y_B).loss
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    @torch.no_grad()
    def prob_positive(self, tokenizer, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
        self.model.eval()
        out = []
        for start in range(0, len(sequences), batch_size):
            ids_BT, mask_BT = padded(tokenizer, sequences[start : start + batch_size])
            out.append(self.model(input_ids=ids_BT, attention_mask=mask_BT).logits.softmax(-1)[:, 1])
        return torch.cat(out)


def labelled(rows: list[dict]) -> tuple[list[str], torch.Tensor]:
    return [r["text"] for r in rows], torch.tensor([int(r["label"]) for r in rows])


class Classifier:
    """A trained classifier: ``predict_proba(texts)`` = P(label 1) of each text."""

    def __init__(self, backbone: Backbone, cfg: FinetuneConfig, predict):
        self.backbone, self.cfg, self._predict = backbone, cfg, predict

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self._predict(encode_texts(self.backbone.tokenizer, texts, self.cfg.max_length)).numpy()


class ClassifierFinetune(Finetune):
    consumes = ("query",)
    produces = "classifier"


@FINETUNES.register("classifier_head", ClassifierHeadConfig)
class ClassifierHead(ClassifierFinetune):
    def train(self, rows, backbone, work, context):
        texts, y = labelled(rows)
        module = HeadOnlyClassifier(backbone.d_model, self.cfg)
        states = pooled_states(backbone, encode_texts(backbone.tokenizer, texts, self.cfg.max_length),
                               self.cfg.inference_batch_size)
        data = shuffled_batches(TensorDataset(states, y), self.cfg.batch_size, context.seed)
        if fit_finetune(self.cfg, module, data, work, context):
            save_file(module.score.state_dict(), work / "head.safetensors")

    def load(self, folder, backbone):
        module = HeadOnlyClassifier(backbone.d_model, self.cfg)
        module.score.load_state_dict(load_file(folder / "head.safetensors"))
        return Classifier(backbone, self.cfg, lambda sequences: module.prob_positive(
            pooled_states(backbone, sequences, self.cfg.inference_batch_size)))


@FINETUNES.register("classifier_lora", ClassifierLoraConfig)
class ClassifierLora(ClassifierFinetune):
    imports = ("peft",)
    distributed = True

    def train(self, rows, backbone, work, context):
        texts, y = labelled(rows)
        module = LoRAClassifier(backbone.path, backbone.tokenizer.pad_token_id, self.cfg)
        ids, mask = padded(backbone.tokenizer, encode_texts(backbone.tokenizer, texts, self.cfg.max_length))
        data = shuffled_batches(TensorDataset(ids, mask, y), self.cfg.batch_size, context.seed)
        if fit_finetune(self.cfg, module, data, work, context):
            module.model.save_pretrained(work / "adapter")

    def load(self, folder, backbone):
        module = LoRAClassifier(backbone.path, backbone.tokenizer.pad_token_id, self.cfg, str(folder / "adapter"))
        return Classifier(backbone, self.cfg, lambda sequences: module.prob_positive(
            backbone.tokenizer, sequences, self.cfg.inference_batch_size))
