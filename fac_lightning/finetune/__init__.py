"""Finetune kinds (``finetune=classifier_head | classifier_lora``): one module each, registered in ``FINETUNES``."""

from fac_lightning.registry import Registry

FINETUNES = Registry("finetune kind", "finetune.kind", __name__, group="finetune")
