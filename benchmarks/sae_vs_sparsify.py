"""Our TopK SAE (Lightning training path) vs EleutherAI sparsify's SparseCoder, on the same pre-harvested activations.

    python benchmarks/sae_vs_sparsify.py sae.auxk_coef=0 [sae.k=32 sae.expansion_factor=16 sae.batch_tokens=4096]
        [+bench.tokens=200000 +bench.heldout_tokens=16384]

Needs sparsify, installed only for this benchmark (keeps our torch/transformers untouched):
    pip install --no-deps eai-sparsify simple-parsing docstring-parser einops natsort schedulefree
Activations of ``backbone.layer`` are harvested once into RAM (held-out = the first batches, i.e. other sequences),
the training ones shuffled once; both SAEs then see the same batches in the same order, with the same width, k,
batch size, constant Adam LR and AuxK weight (``sae.auxk_coef`` is used as sparsify's ``auxk_alpha``). Only the
training loops are timed. Held-out FVU = sum||x - x_hat||^2 / sum||x - mean(x)||^2 over all held-out tokens.
"""

import time

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from fac_lightning.activations import ActivationStream, TokenizedCorpus
from fac_lightning.backbone import load_backbone
from fac_lightning.config import register_configs
from fac_lightning.data.conversations import load_conversations
from fac_lightning.sae.module import SAEModule, auto_lr

try:
    from sparsify import SparseCoder, SparseCoderConfig
except ImportError as e:
    raise SystemExit(f"sparsify is not importable ({e}). Install it without touching torch/transformers:\n"
                     "  pip install --no-deps eai-sparsify simple-parsing docstring-parser einops natsort schedulefree")

register_configs()


def harvest(cfg: DictConfig, n_train: int, n_heldout: int) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    conversations = [c for s in cfg.data.sources for c in load_conversations(s, cfg.paths.data_dir)]
    corpus = TokenizedCorpus(backbone, conversations, cfg.activations)
    stream = ActivationStream(backbone, corpus, cfg.sae.batch_tokens, cfg.activations.buffer_tokens, cfg.seed)
    heldout, train, n = [], [], 0
    start = time.perf_counter()
    for batch in corpus.batches(cfg.seed):  # whole batches go to one side: held-out and train share no sequence
        x_ND = stream.harvest(batch).clone()
        (heldout if sum(map(len, heldout)) < n_heldout else train).append(x_ND)
        n += len(x_ND)
        if n >= n_heldout + n_train:
            break
    x_train = torch.cat(train)
    x_train = x_train[torch.randperm(len(x_train), generator=torch.Generator().manual_seed(cfg.seed))]
    print(f"harvested {n} tokens in {time.perf_counter() - start:.0f} s")
    return list(x_train.split(cfg.sae.batch_tokens))[: n_train // cfg.sae.batch_tokens], torch.cat(heldout), \
        backbone.d_model


class LoopTimer(pl.Callback):
    def on_train_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_end(self, trainer, module):
        self.seconds = time.perf_counter() - self.start


def train_ours(cfg: DictConfig, batches: list[torch.Tensor], d_in: int) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(cfg.seed)
    module = SAEModule(OmegaConf.to_object(cfg.sae), d_in)
    timer = LoopTimer()
    trainer = pl.Trainer(max_steps=len(batches), accelerator="cpu", devices=1, logger=False, callbacks=[timer],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert trainer.global_step == len(batches), trainer.global_step
    return module.sae, timer.seconds


def train_sparsify(cfg: DictConfig, batches: list[torch.Tensor], d_in: int, lr: float) -> tuple[torch.nn.Module, float]:
    """sparsify's Trainer.fit inner loop (fvu loss, one micro-batch, no grad accumulation), with Adam at a constant LR."""
    torch.manual_seed(cfg.seed)
    sae = SparseCoder(d_in, SparseCoderConfig(expansion_factor=cfg.sae.expansion_factor, num_latents=cfg.sae.num_latents,
                                              k=cfg.sae.k, normalize_decoder=True), "cpu", dtype=torch.float32)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    alpha = cfg.sae.auxk_coef
    since_fired = torch.zeros(sae.num_latents, dtype=torch.long)
    did_fire = torch.zeros(sae.num_latents, dtype=torch.bool)
    start = time.perf_counter()
    for step, x in enumerate(batches):
        if step == 0:
            sae.b_dec.data = x.mean(0)
        sae.set_decoder_norm_to_unit_norm()
        dead = since_fired > cfg.sae.dead_tokens if alpha > 0 else None
        out = sae(x=x, y=x, dead_mask=dead, total_variance=(x - x.mean(0)).pow(2).sum())
        did_fire[out.latent_indices.flatten()] = True
        float(out.fvu.detach())  # sparsify logs it every step
        (out.fvu + alpha * out.auxk_loss + out.multi_topk_fvu / 8).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            since_fired += len(x)
            since_fired[did_fire] = 0
            did_fire.zero_()
    seconds = time.perf_counter() - start
    sae.set_decoder_norm_to_unit_norm()  # sparsify normalises before each forward; do it once more for eval
    return sae, seconds


@torch.no_grad()
def heldout_fvu(reconstruct, x_ND: torch.Tensor, chunk: int) -> float:
    sse = sum((reconstruct(x) - x).pow(2).sum().item() for x in x_ND.split(chunk))
    return sse / (x_ND - x_ND.mean(0)).pow(2).sum().item()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    bench = cfg.get("bench", {})
    n_train, n_heldout = bench.get("tokens", 200_000), bench.get("heldout_tokens", 16_384)
    batches, x_heldout, d_in = harvest(cfg, n_train, n_heldout)
    num_latents = cfg.sae.num_latents or cfg.sae.expansion_factor * d_in
    lr = cfg.sae.lr or auto_lr(num_latents)
    cfg.sae.lr = lr  # both get the same explicit constant LR
    assert cfg.sae.lr_warmup_steps == 0, "the sparsify loop here has no warm-up; keep sae.lr_warmup_steps=0"
    tokens = len(batches) * cfg.sae.batch_tokens

    ours, t_ours = train_ours(cfg, batches, d_in)
    theirs, t_theirs = train_sparsify(cfg, batches, d_in, lr)
    ours.eval(), theirs.eval()
    fvu_ours = heldout_fvu(lambda x: ours(x).x_hat_BD, x_heldout, cfg.sae.batch_tokens)
    fvu_theirs = heldout_fvu(lambda x: theirs(x).sae_out, x_heldout, cfg.sae.batch_tokens)

    print(f"\nbackbone={cfg.backbone.name} layer={cfg.backbone.layer} d_in={d_in} num_latents={num_latents} "
          f"k={cfg.sae.k} batch_tokens={cfg.sae.batch_tokens} train_tokens={tokens} steps={len(batches)} "
          f"heldout_tokens={len(x_heldout)} lr={lr:.3g} auxk={cfg.sae.auxk_coef} init_b_dec(ours)={cfg.sae.init_b_dec} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")
    print("| SAE | tokens/s | held-out FVU |\n|---|---:|---:|")
    print(f"| ours (fac_lightning TopKSAE + Lightning) | {tokens / t_ours:,.0f} | {fvu_ours:.4f} |")
    print(f"| sparsify SparseCoder | {tokens / t_theirs:,.0f} | {fvu_theirs:.4f} |")
    print(f"\nspeed ratio ours/sparsify: {t_theirs / t_ours:.2f}")


if __name__ == "__main__":
    main()
