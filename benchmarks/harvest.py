"""Activation harvesting throughput vs a bare forward pass of the same model on the same batches.

    python benchmarks/harvest.py [backbone=smollm2_135m] [+bench.batches=8]

Prints tokens/s of (a) a bare full forward pass ``model(input_ids, attention_mask)``, (b) a bare forward that stops
after layer L (the hook alone), (c) our activation stream (forward to layer L + keep mask + float32 copy + shuffling
buffer, i.e. what SAE training consumes), and the ratios of (c) to (a) and to (b).
"""

import time

import hydra
import torch
from omegaconf import DictConfig

from fac_lightning.activations import ActivationStream, ShuffleBuffer, TokenizedCorpus
from fac_lightning.backbone import load_backbone
from fac_lightning.config import register_configs
from fac_lightning.data.conversations import load_conversations
from fac_lightning.hooks import run_to_layer

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    n_batches = cfg.get("bench", {}).get("batches", 8)
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    conversations = load_conversations(cfg.data.sources[0], cfg.paths.data_dir)
    corpus = TokenizedCorpus(backbone, conversations, cfg.activations)
    batches = [b for _, b in zip(range(n_batches), corpus.batches(cfg.seed))]
    tokens = sum(int(b.attention_mask_BT.sum()) for b in batches)
    model = backbone.model

    @torch.inference_mode()
    def bare():
        for b in batches:
            model(input_ids=b.input_ids_BT, attention_mask=b.attention_mask_BT, use_cache=False)

    @torch.inference_mode()
    def to_layer():
        for b in batches:
            run_to_layer(model, cfg.backbone.layer, b.input_ids_BT, b.attention_mask_BT)

    stream = ActivationStream(backbone, corpus, cfg.sae.batch_tokens, cfg.activations.buffer_tokens, cfg.seed)

    def harvest():
        buffer = ShuffleBuffer(cfg.activations.buffer_tokens, cfg.seed)
        for b in batches:
            buffer.add(stream.harvest(b))
            if buffer.ready():
                for _ in buffer.take(cfg.sae.batch_tokens):
                    pass

    bare()  # warm-up
    rows = []
    for name, fn in (("bare forward (all layers + lm_head)", bare), (f"bare forward to layer {cfg.backbone.layer}", to_layer),
                     (f"activation stream (layer {cfg.backbone.layer})", harvest)):
        start = time.perf_counter()
        fn()
        rows.append((name, tokens / (time.perf_counter() - start)))
    print(f"\nbackbone={cfg.backbone.name} dtype={model.dtype} batches={n_batches} "
          f"x {cfg.activations.text_batch_size} seqs, {tokens} tokens, threads={torch.get_num_threads()}")
    print(f"| {'path':40s} | tokens/s |\n|{'-' * 42}|----------|")
    for name, tps in rows:
        print(f"| {name:40s} | {tps:8.0f} |")
    print(f"| {'ratio stream / bare full forward':40s} | {rows[2][1] / rows[0][1]:8.2f} |")
    print(f"| {'ratio stream / bare forward to layer':40s} | {rows[2][1] / rows[1][1]:8.2f} |")


if __name__ == "__main__":
    main()
