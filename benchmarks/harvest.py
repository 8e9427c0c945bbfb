"""Activation harvesting throughput vs a bare forward pass of the same model on the same batches, on any device.

    python benchmarks/harvest.py [backbone=smollm2_135m] [backbone.device=cuda] [+bench.batches=8]
        [+bench.repeats=1]

Prints tokens/s of (a) a bare full forward pass ``model(input_ids, attention_mask)``, (b) a bare forward that stops
after layer L (the hook alone), (c) our activation stream (forward to layer L + keep mask + float32 copy + shuffling
buffer, i.e. what SAE training consumes: ``ActivationStream.activation_batches``), and the ratios of (c) to (a) and
to (b). The model runs on ``backbone.device`` (``auto`` = CUDA when available); every path gets the same CPU token
batches, as the corpus yields them, and copies them to the device itself; on CUDA each timing is bracketed by
``torch.cuda.synchronize``. With the default 65,536-token shuffling buffer, 8 batches (~20k tokens) never fill it:
pass ``activations.buffer_tokens=8192`` to time the buffer's shuffle and emission too.
``+bench.repeats=N`` times each path N times, rotating which goes first, and reports the median (for a shared CPU)
beside the slowest and fastest run.
"""

import statistics
import time

import hydra
import torch
from devices import device_name, synchronize  # benchmarks/devices.py (the script's folder is on sys.path)
from omegaconf import DictConfig

from fac_lightning.activations import ActivationStream, TokenBatch, TokenizedCorpus
from fac_lightning.backbone import load_backbone
from fac_lightning.config import register_configs
from fac_lightning.data.conversations import load_conversations
from fac_lightning.hooks import run_to_layer

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    bench = cfg.get("bench", {})
    n_batches, repeats = bench.get("batches", 8), bench.get("repeats", 1)
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    model, layer, device = backbone.model, cfg.backbone.layer, backbone.device
    conversations = load_conversations(cfg.data.sources[0], cfg.paths.data_dir)
    corpus = TokenizedCorpus(backbone, conversations, cfg.activations)
    batches = [b for _, b in zip(range(n_batches), corpus.batches(cfg.seed))]
    tokens = sum(int(b.attention_mask_BT.sum()) for b in batches)

    def on_device(b: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return b.input_ids_BT.to(device, non_blocking=True), b.attention_mask_BT.to(device, non_blocking=True)

    @torch.inference_mode()
    def bare(batches):
        for b in batches:
            ids_BT, mask_BT = on_device(b)
            model(input_ids=ids_BT, attention_mask=mask_BT, use_cache=False)

    @torch.inference_mode()
    def to_layer(batches):
        for b in batches:
            run_to_layer(model, layer, *on_device(b))

    def harvest(batches):
        stream = ActivationStream(backbone, corpus, cfg.sae.batch_tokens, cfg.activations.buffer_tokens, cfg.seed)
        for _ in stream.activation_batches(batches):
            pass

    paths = {"bare forward (all layers + lm_head)": bare, f"bare forward to layer {layer}": to_layer,
             f"activation stream (layer {layer})": harvest}
    for fn in paths.values():  # warm-up: allocator, kernel selection
        fn(batches[:1])
    synchronize(device)
    seconds = {name: [] for name in paths}
    names = list(paths)
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[: rep % len(names)]:
            start = time.perf_counter()
            paths[name](batches)
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    tps = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    full, to_l, streamed = (tps[name] for name in names)
    print(f"\nbackbone={cfg.backbone.name} dtype={model.dtype} device={device_name(device)} batches={n_batches} "
          f"x {cfg.activations.text_batch_size} seqs, {tokens} tokens, buffer_tokens={cfg.activations.buffer_tokens} "
          f"batch_tokens={cfg.sae.batch_tokens}, median of {repeats} timed run(s)")
    print(f"| {'path':40s} | tokens/s | slowest-fastest run |\n|{'-' * 42}|----------|---------------------|")
    for name in names:
        spread = f"{tokens / max(seconds[name]):.0f}-{tokens / min(seconds[name]):.0f}"
        print(f"| {name:40s} | {tps[name]:8.0f} | {spread:>19s} |")
    print(f"| {'ratio stream / bare full forward':40s} | {streamed / full:8.2f} | {'':19s} |")
    print(f"| {'ratio stream / bare forward to layer':40s} | {streamed / to_l:8.2f} | {'':19s} |")


if __name__ == "__main__":
    main()
