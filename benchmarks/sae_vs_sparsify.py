"""Our TopK SAE (real Lightning training path) vs EleutherAI sparsify's SparseCoder on the same activations.

    python benchmarks/sae_vs_sparsify.py sae.auxk_coef=0 [sae.k=32 sae.expansion_factor=16]
        [sae.batch_tokens=4096] [+bench.tokens=200000 +bench.heldout_tokens=16384 +bench.repeats=1]
        [+bench.expansion_factors=[16,64]]   # one harvest, a table per width (default: sae.expansion_factor)
        [trainer=gpu [trainer.precision=bf16-mixed]] [backbone.device=cuda]

sparsify is installed only for this benchmark, without letting pip touch torch / transformers:
    pip install --no-deps eai-sparsify simple-parsing docstring-parser einops natsort schedulefree

Activations of ``backbone.layer`` are harvested once into RAM (held-out = the first batches, so other
sequences), the training ones shuffled once; both SAEs see the same batches in the same order, with the same
width, k, batch size, constant Adam LR and AuxK weight (``sae.auxk_coef`` doubles as sparsify's
``auxk_alpha``). Each SAE keeps its own initialisation and Adam eps. Only the training loops are timed
(``+bench.repeats=N``: each SAE is trained N times, alternating which goes first, and the median is reported,
since the CPU may be shared). Held-out FVU = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over held-out tokens.

Both SAEs train on the device of ``trainer=`` (``cpu`` | ``gpu`` = CUDA); the activations are harvested on
``backbone.device`` and moved there before timing (the real stream yields them on the backbone's device too), and on
CUDA each timed loop is bracketed by ``torch.cuda.synchronize``. sparsify wraps its forward in a bfloat16 autocast
on any CUDA device that supports it (hard-coded); ours runs at ``trainer.precision``, so ``trainer.precision=bf16-mixed``
is the like-for-like GPU comparison and ``32-true`` measures our float32 path.
"""

import copy
import statistics
import time

import hydra
import pytorch_lightning as pl
import torch
from devices import device_name, synchronize  # benchmarks/devices.py (the script's folder is on sys.path)
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
    raise SystemExit(f"sparsify is not importable ({e}); install it without touching torch/transformers:\n"
                     "  pip install --no-deps eai-sparsify simple-parsing docstring-parser einops natsort "
                     "schedulefree")

register_configs()


def harvest(cfg: DictConfig, n_train: int, n_heldout: int) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """(shuffled training batches of batch_tokens rows, held-out activations, d_model)."""
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    conversations = [c for s in cfg.data.sources for c in load_conversations(s, cfg.paths.data_dir)]
    corpus = TokenizedCorpus(backbone, conversations, cfg.activations)
    stream = ActivationStream(backbone, corpus, cfg.sae.batch_tokens, cfg.activations.buffer_tokens, cfg.seed)
    heldout, train, n, start = [], [], 0, time.perf_counter()
    for batch in corpus.batches(cfg.seed):  # whole text batches go to one side: no sequence is in both
        x_ND = stream.harvest(batch).clone()  # clone: leave inference mode
        (heldout if sum(map(len, heldout)) < n_heldout else train).append(x_ND)
        n += len(x_ND)
        if n >= n_heldout + n_train:
            break
    print(f"harvested {n} tokens in {time.perf_counter() - start:.0f} s")
    x_ND = torch.cat(train)
    x_ND = x_ND[torch.randperm(len(x_ND), generator=torch.Generator().manual_seed(cfg.seed))]
    batches = [x for x in x_ND.split(cfg.sae.batch_tokens) if len(x) == cfg.sae.batch_tokens]
    return batches[: n_train // cfg.sae.batch_tokens], torch.cat(heldout), backbone.d_model


def training_device(accelerator: str) -> torch.device:
    """The torch device a Lightning ``accelerator`` (cpu | gpu | cuda | auto) trains on."""
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cuda" if accelerator in ("gpu", "cuda") else accelerator)


class LoopTimer(pl.Callback):
    def on_train_start(self, trainer, module):
        synchronize(module.device)
        self.start = time.perf_counter()

    def on_train_end(self, trainer, module):
        synchronize(module.device)
        self.seconds = time.perf_counter() - self.start


def train_ours(cfg: DictConfig, batches: list[torch.Tensor], d_in: int) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(cfg.seed)
    module, timer = SAEModule(OmegaConf.to_object(cfg.sae), d_in), LoopTimer()
    trainer = pl.Trainer(max_steps=len(batches), accelerator=cfg.trainer.accelerator, devices=1,
                         precision=cfg.trainer.precision, logger=False,
                         callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert trainer.global_step == len(batches), trainer.global_step
    return module.sae, timer.seconds


def train_sparsify(cfg: DictConfig, batches: list[torch.Tensor], d_in: int, lr: float, device: torch.device):
    """sparsify's Trainer.fit step (loss_fn=fvu, no grad accumulation or micro-batches), constant-LR Adam."""
    torch.manual_seed(cfg.seed)
    coder_cfg = SparseCoderConfig(expansion_factor=cfg.sae.expansion_factor,
                                  num_latents=cfg.sae.num_latents, k=cfg.sae.k, normalize_decoder=True)
    sae = SparseCoder(d_in, coder_cfg, device, dtype=torch.float32)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    alpha = cfg.sae.auxk_coef
    since_fired = torch.zeros(sae.num_latents, dtype=torch.long, device=device)
    did_fire = torch.zeros(sae.num_latents, dtype=torch.bool, device=device)
    synchronize(device)
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
    synchronize(device)
    seconds = time.perf_counter() - start
    sae.set_decoder_norm_to_unit_norm()  # sparsify renormalises before each forward: once more before eval
    return sae, seconds


@torch.no_grad()
def heldout_fvu(reconstruct, x_ND: torch.Tensor, chunk: int) -> float:
    sse = sum((reconstruct(x) - x).pow(2).sum().item() for x in x_ND.split(chunk))
    return sse / (x_ND - x_ND.mean(0)).pow(2).sum().item()


def compare(cfg: DictConfig, batches: list[torch.Tensor], x_heldout: torch.Tensor, d_in: int,
            device: torch.device, repeats: int) -> None:
    """Train both SAEs of ``cfg.sae``'s width on the same batches, ``repeats`` times each, and print the table."""
    num_latents = cfg.sae.num_latents or cfg.sae.expansion_factor * d_in
    cfg.sae.lr = lr = cfg.sae.lr or auto_lr(num_latents)  # the same explicit constant LR for both
    tokens = len(batches) * cfg.sae.batch_tokens
    runs = {"ours": lambda: train_ours(cfg, batches, d_in),
            "sparsify": lambda: train_sparsify(cfg, batches, d_in, lr, device)}
    seconds, trained = {name: [] for name in runs}, {}
    for rep in range(repeats):  # same seed and data: every repeat trains the same SAE
        for name in sorted(runs, reverse=rep % 2 == 1):
            trained[name], s = runs[name]()
            seconds[name].append(s)
    t_ours, t_theirs = (statistics.median(seconds[name]) for name in runs)
    ours, theirs = trained["ours"].eval(), trained["sparsify"].eval()
    fvu_ours = heldout_fvu(lambda x: ours(x).x_hat_BD, x_heldout, cfg.sae.batch_tokens)
    fvu_theirs = heldout_fvu(lambda x: theirs(x).sae_out, x_heldout, cfg.sae.batch_tokens)

    sparsify_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    print(f"\ndevice={device_name(device)} precision: ours {cfg.trainer.precision}, sparsify "
          f"{'bf16 autocast' if sparsify_bf16 else 'float32'}")
    print(f"backbone={cfg.backbone.name} layer={cfg.backbone.layer} d_in={d_in} num_latents={num_latents} "
          f"k={cfg.sae.k} batch_tokens={cfg.sae.batch_tokens} train_tokens={tokens} steps={len(batches)} "
          f"heldout_tokens={len(x_heldout)} lr={lr:.3g} auxk={cfg.sae.auxk_coef} init_b_dec(ours)="
          f"{cfg.sae.init_b_dec} threads={torch.get_num_threads()} torch={torch.__version__}")
    print("| SAE | tokens/s | held-out FVU |\n|---|---:|---:|")
    print(f"| ours (fac_lightning TopKSAE + Lightning) | {tokens / t_ours:,.0f} | {fvu_ours:.4f} |")
    print(f"| sparsify SparseCoder | {tokens / t_theirs:,.0f} | {fvu_theirs:.4f} |")
    print(f"\nspeed ratio ours/sparsify: {t_theirs / t_ours:.2f}  "
          f"(median of {len(seconds['ours'])} timed run(s); "
          f"seconds ours {[round(t, 1) for t in seconds['ours']]}, "
          f"sparsify {[round(t, 1) for t in seconds['sparsify']]})", flush=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    bench = cfg.get("bench", {})
    n_train, n_heldout = bench.get("tokens", 200_000), bench.get("heldout_tokens", 16_384)
    assert cfg.sae.lr_warmup_steps == 0, "the sparsify loop has no LR warm-up: keep sae.lr_warmup_steps=0"
    device = training_device(cfg.trainer.accelerator)
    batches, x_heldout, d_in = harvest(cfg, n_train, n_heldout)
    batches, x_heldout = [x.to(device) for x in batches], x_heldout.to(device)
    for expansion_factor in bench.get("expansion_factors", [cfg.sae.expansion_factor]):  # one harvest, each width
        width_cfg = copy.deepcopy(cfg)
        width_cfg.sae.expansion_factor = expansion_factor
        compare(width_cfg, batches, x_heldout, d_in, device, bench.get("repeats", 1))


if __name__ == "__main__":
    main()
