"""What each commit bought: our SAE training loop at several commits (and sparsify) on the same cached activations.

    python benchmarks/sae_commits.py COMMIT [COMMIT ...] [--expansion-factor 16] [--rounds 3] [--steps 10]
        [--acts /tmp/sae_commits_acts.pt]

Each commit's ``fac_lightning`` is unpacked with ``git archive`` into a temporary folder; every run is a fresh
subprocess importing one of them (or sparsify, see benchmarks/sae_vs_sparsify.py for its install), training on the same
batches of 4,096 SmolLM2 layer-15 activations through the real Lightning loop (as sae_vs_sparsify.py: k=32, AuxK off,
constant auto-LR, no logger), timed from ``on_train_start`` to ``on_train_end``. Each round runs every variant once,
rotating which goes first; the table gives each variant's ms per step in every round, the median, and held-out FVU on
the last two batches. The activations are harvested once with the current checkout (``--acts`` caches them).
Set ``OMP_NUM_THREADS`` to fix the thread count: on a shared, oversubscribed CPU one thread per run is steadier.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH_TOKENS, D_MODEL, K = 4096, 576, 32


def harvest(path: Path, n_batches: int) -> None:
    import torch
    from hydra import compose, initialize_config_dir

    from fac_lightning.activations import ActivationStream, TokenizedCorpus
    from fac_lightning.backbone import load_backbone
    from fac_lightning.config import register_configs
    from fac_lightning.data.conversations import load_conversations

    register_configs()
    with initialize_config_dir(str(Path(__file__).resolve().parent.parent / "conf"), version_base="1.3"):
        cfg = compose("train")
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    corpus = TokenizedCorpus(backbone, load_conversations(cfg.data.sources[0], cfg.paths.data_dir), cfg.activations)
    stream = ActivationStream(backbone, corpus, BATCH_TOKENS, cfg.activations.buffer_tokens, cfg.seed)
    chunks, n = [], 0
    for batch in corpus.batches(cfg.seed):
        chunks.append(stream.harvest(batch).clone())
        n += len(chunks[-1])
        if n >= BATCH_TOKENS * n_batches:
            break
    x_ND = torch.cat(chunks)
    torch.save(x_ND[torch.randperm(len(x_ND), generator=torch.Generator().manual_seed(0))].cpu(), path)


def worker(which: str, acts: Path, expansion_factor: int, steps: int) -> None:
    """One timed training run; prints a RESULT line with ms per step and held-out FVU."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    from fac_lightning.sae.module import SAEModule, auto_lr
    from fac_lightning.sae.topk import TopKConfig

    batches = [x for x in torch.load(acts).split(BATCH_TOKENS) if len(x) == BATCH_TOKENS]
    x_heldout, batches = torch.cat(batches[-2:]), batches[:-2][:steps]
    lr = auto_lr(expansion_factor * D_MODEL)
    torch.manual_seed(0)
    if which == "sparsify":
        from sparsify import SparseCoder, SparseCoderConfig

        sae = SparseCoder(D_MODEL, SparseCoderConfig(expansion_factor=expansion_factor, k=K, normalize_decoder=True),
                          "cpu", dtype=torch.float32)
        optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
        did_fire = torch.zeros(sae.num_latents, dtype=torch.bool)
        start = time.perf_counter()
        for step, x in enumerate(batches):  # as benchmarks/sae_vs_sparsify.py's train_sparsify, AuxK off
            if step == 0:
                sae.b_dec.data = x.mean(0)
            sae.set_decoder_norm_to_unit_norm()
            out = sae(x=x, y=x, total_variance=(x - x.mean(0)).pow(2).sum())
            did_fire[out.latent_indices.flatten()] = True
            float(out.fvu.detach())
            (out.fvu + out.multi_topk_fvu / 8).backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            optimizer.step()
            optimizer.zero_grad()
        seconds = time.perf_counter() - start
        sae.set_decoder_norm_to_unit_norm()
        reconstruct = lambda x: sae(x).sae_out
    else:
        class Timer(pl.Callback):
            def on_train_start(self, trainer, module):
                self.start = time.perf_counter()

            def on_train_end(self, trainer, module):
                self.seconds = time.perf_counter() - self.start

        module, timer = SAEModule(TopKConfig(expansion_factor=expansion_factor, k=K, auxk_coef=0, lr=lr), D_MODEL), Timer()
        trainer = pl.Trainer(max_steps=len(batches), accelerator="cpu", devices=1, logger=False, callbacks=[timer],
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=10)
        trainer.fit(module, DataLoader(batches, batch_size=None))
        seconds, sae = timer.seconds, module.sae.eval()
        reconstruct = lambda x: sae(x).x_hat_BD
    with torch.no_grad():
        fvu = ((reconstruct(x_heldout) - x_heldout).pow(2).sum() / (x_heldout - x_heldout.mean(0)).pow(2).sum()).item()
    print("RESULT " + json.dumps({"ms_per_step": 1000 * seconds / len(batches), "fvu": fvu,
                                  "threads": torch.get_num_threads()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commits", nargs="*")
    parser.add_argument("--expansion-factor", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--acts", type=Path, default=Path(tempfile.gettempdir()) / "sae_commits_acts.pt")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.acts, args.expansion_factor, args.steps)
    if not args.commits:
        parser.error("name at least one commit")
    if not args.acts.exists():
        harvest(args.acts, args.steps + 2)
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        code = {}
        for commit in args.commits:
            code[commit] = Path(tmp) / commit
            code[commit].mkdir()
            archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "fac_lightning"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(code[commit])], input=archive, check=True)
        variants = [*args.commits, "sparsify"]
        results = {v: [] for v in variants}
        for r in range(args.rounds):
            for v in variants[r % len(variants):] + variants[: r % len(variants)]:
                env = {**os.environ, "PYTHONPATH": str(code.get(v, code[args.commits[-1]]))}
                load = os.getloadavg()[0]
                out = subprocess.run([sys.executable, __file__, "--worker", "sparsify" if v == "sparsify" else "ours",
                                      "--acts", str(args.acts), "--expansion-factor", str(args.expansion_factor),
                                      "--steps", str(args.steps)], env=env, capture_output=True, text=True, cwd=tmp,
                                     check=False)
                line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise SystemExit(f"{v} failed:\n{out.stderr[-3000:]}")
                results[v].append({**json.loads(line[7:]), "load": load})
    first = results[variants[0]][0]
    print(f"\nexpansion_factor={args.expansion_factor} num_latents={args.expansion_factor * D_MODEL} k={K} "
          f"batch_tokens={BATCH_TOKENS} steps={args.steps} rounds={args.rounds} threads={first['threads']}")
    print("| variant | ms/step per round (1-min load at start) | median ms/step | vs first commit | held-out FVU |")
    print("|---|---|---:|---:|---:|")
    base = statistics.median(x["ms_per_step"] for x in results[variants[0]])
    for v in variants:
        runs = results[v]
        median = statistics.median(x["ms_per_step"] for x in runs)
        per_round = ", ".join(f"{x['ms_per_step']:.0f} ({x['load']:.1f})" for x in runs)
        print(f"| {v} | {per_round} | {median:.0f} | {base / median:.2f}x | {runs[-1]['fvu']:.4f} |")


if __name__ == "__main__":
    main()
