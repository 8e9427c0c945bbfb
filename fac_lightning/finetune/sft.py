"""Supervised fine-tuning with LoRA on ``instruction_response`` rows: finetune kind ``sft_lora``, which produces a
``chat_model`` (``finetune/chat_model.py``: the adapter merged into the model for evaluation).

TRL's SFT semantics for conversational prompt-completion rows (``trl/trainer/sft_trainer.py``, ``tokenize_fn``):
the prompt is chat-templated with the generation prompt, the prompt + completion without it; the completion starts
where the two token sequences diverge (TRL's ``common_prefix_length``), only its tokens carry labels (TRL's
``completion_only_loss``), sequences are cut at ``max_length`` from the end (TRL's ``keep_start``), and TRL's
``DataCollatorForLanguageModeling`` pads them (labels -100 on padding). The fit runs through Lightning's one
Trainer builder, like every finetune here.

The model fine-tuned is ``finetune.target`` (a backbone config; None = the run's backbone): features may come from
one model (the SAE backbone, e.g. the instruct SmolLM2-135M) and the SFT go to another (the base Gemma-3-270M), the
paper's own setting (features from Llama-3.1-8B-Instruct, SFT of Llama-3-8B base).
"""

from dataclasses import dataclass

import torch

from fac_lightning.backbone import Backbone, backbone_shape, load_backbone
from fac_lightning.chat import encode_chat
from fac_lightning.config import BackboneConfig
from fac_lightning.finetune import FINETUNES
from fac_lightning.finetune.base import (
    AdapterCheckpoints,
    Finetune,
    FinetuneConfig,
    LoraFields,
    fit_finetune,
    scheduled_adamw,
)
from fac_lightning.finetune.chat_model import ChatModel
from fac_lightning.finetune.resume import shuffled_batches


@dataclass
class SFTLoraConfig(FinetuneConfig, LoraFields):
    """Paper §3.4 (LLaMA-Factory run of App. J): LoRA r=8, alpha=16, dropout 0 on every linear projection, 5 epochs,
    lr 1e-4, batch 4 x accumulation 4 (16), AdamW defaults, linear schedule without warm-up, weight decay 0,
    gradient clipping 1.0."""

    epochs: int = 5
    lr: float = 1e-4
    batch_size: int = 4
    accumulate_grad_batches: int = 4
    max_length: int = 1024
    """Tokens per prompt + completion, cut from the end (LLaMA-Factory's default cutoff_len, 1024)."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    gradient_clip_val: float = 1.0
    target: BackboneConfig | None = None
    """The model to fine-tune (e.g. the ``backbone=gemma3_270m`` config); None = the run's backbone."""

    def __post_init__(self):
        super().__post_init__()
        self.check_lora()


def sft_example(tokenizer, row: dict, max_length: int) -> dict:
    """A row as TRL's tokenized prompt-completion example: ``input_ids`` and ``labels`` (-100 on the prompt)."""
    prompt_ids = encode_chat(tokenizer, row["prompt"], add_generation_prompt=True)
    ids = encode_chat(tokenizer, row["prompt"] + row["completion"])
    from trl.data_utils import common_prefix_length

    prompt_len = common_prefix_length(prompt_ids, ids)
    labels = [-100] * prompt_len + ids[prompt_len:]
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def lora_causal_lm(model_path: str, cfg: SFTLoraConfig, adapter_dir: str | None = None):
    """The model (fp32) with new peft LoRA adapters from ``cfg``, or trained ones loaded from ``adapter_dir``."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, adapter_dir)
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules))
    model = get_peft_model(model, lora)
    model.train()  # from_pretrained returns eval mode, and Lightning keeps it
    return model


class LoRASFT(AdapterCheckpoints):
    def __init__(self, model, cfg: SFTLoraConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def training_step(self, batch, batch_idx):
        loss = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return scheduled_adamw(self, self.cfg, "linear")


@FINETUNES.register("sft_lora", SFTLoraConfig)
class SFTLora(Finetune):
    imports = ("trl", "peft")
    consumes = ("instruction_response",)
    produces = "chat_model"
    distributed = True

    def preflight(self, backbone, shape, cache_dir):
        """The other backbone it fine-tunes can be found (installed, a folder, or a hub id with the hub)."""
        if self.cfg.target is not None:
            try:
                backbone_shape(self.cfg.target, cache_dir)
            except OSError as e:
                raise FileNotFoundError(f"finetune.target (backbone {self.cfg.target.name!r}): {e}") from None

    def target(self, backbone: Backbone) -> Backbone:
        """The backbone to fine-tune: ``finetune.target`` if set (loaded from the run backbone's cache, converted
        once if it is a GGUF), else the run's."""
        if self.cfg.target is None or self.cfg.target.name == backbone.cfg.name:
            return backbone
        return load_backbone(self.cfg.target, backbone.cache_dir)

    def train(self, rows, backbone, work, context):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        target = self.target(backbone)
        tokenizer = target.tokenizer
        examples = [sft_example(tokenizer, row, self.cfg.max_length) for row in rows]
        data = shuffled_batches(examples, self.cfg.batch_size, context.seed,
                                collate_fn=DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id))
        module = LoRASFT(lora_causal_lm(target.path, self.cfg), self.cfg)
        if fit_finetune(self.cfg, module, data, work, context, gradient_clip_val=self.cfg.gradient_clip_val):
            module.model.save_pretrained(work / "adapter")

    def load(self, folder, backbone):
        """The merged model, in the dtype the target backbone runs in (as the un-finetuned base it is compared with)."""
        target = self.target(backbone)
        model = lora_causal_lm(target.path, self.cfg, str(folder / "adapter")).merge_and_unload()
        model = model.to(dtype=target.model.dtype, device=target.device).eval()
        return ChatModel(model, target.tokenizer, f"{self.name}:{target.cfg.name}")
