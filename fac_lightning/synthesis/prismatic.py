"""Prismatic Synthesis (Jung et al., NVIDIA/UW, arXiv 2505.20161): generate where the pool's gradient space is
sparse.

One unit is one round of the released loop:
1. the projected gradients (``metrics/g_vendi.py``: the proxy's loss gradient, a seeded Rademacher projection,
   unit-normalised) of the current pool: the task's seed rows, a seeded sample of its anchor's positive side, and
   every row kept so far;
2. k-means on them (k = ``cluster_ratio`` of the pool, Prismatic's 10 %, cosine via unit vectors), seeded;
3. ``prompts_per_call`` few-shot prompts, each showing ``few_shot`` pool rows drawn at random, each sampled
   ``samples_per_prompt`` times (Prismatic: 5 examples, 2 new problems per request);
4. each candidate that passes the row hygiene gets its gradient and the nearest centroid (cosine); only candidates
   whose cluster is among the ``keep_ratio`` smallest clusters by pool count are kept (Prismatic: 50 %), the rest
   are rejected as ``dense_cluster``;
5. kept rows join the pool, and the next round clusters again, until the budget is full.
Question-first formats (pairs, A/B items, instructions) are answered by the shared answer prompts
(``synthesis/question_first.py``) before their gradient is taken, so a candidate is represented as the row it becomes.

Deviations from the published recipe: the generator is the task's (the embedded 135M model, not Qwen2.5-72B) and the
gradient proxy is by default the backbone's last two MLP down-projections, not every parameter of Qwen2.5-0.5B (see
``metrics/g_vendi.py``; ``synthesis.gradient`` widens it); few-shot examples are drawn uniformly (Prismatic weights
math problems by difficulty level, which these tasks do not have); the initial pool holds at most ``pool_rows``
anchor rows (a seeded sample) so that its gradients take minutes on a CPU; solutions are the question-first answers,
not majority-voted ones (these rows have no verifiable answer); a round is ``prompts_per_call`` x
``samples_per_prompt`` candidates, not ~3,000.
"""

import math
import random
from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING
from sklearn.cluster import KMeans

from fac_lightning.checks import at_least, require, within
from fac_lightning.metrics.g_vendi import GradientConfig, GradientSketch
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts


@dataclass
class PrismaticConfig(GenerativeConfig):
    gradient: GradientConfig = field(default_factory=GradientConfig)
    """How a row's gradient is taken and projected (the proxy, its parameters, the projection)."""
    cluster_ratio: float = 0.1
    """k-means clusters per pool row (Prismatic: k = 10 % of the pool)."""
    keep_ratio: float = 0.5
    """Candidates are kept when their nearest cluster is among this share of clusters, smallest first."""
    kmeans_iterations: int = 20
    """Lloyd iterations of each round's k-means (Prismatic: 20)."""
    few_shot: int = 5
    """Pool rows shown per prompt (Prismatic: 5)."""
    samples_per_prompt: int = 2
    """Candidates sampled per prompt (Prismatic: 2 new problems per request)."""
    pool_rows: int | None = 200
    """Anchor rows (positive side, a seeded sample) in the initial pool beside the seed rows; None = all of them."""
    rounds: int | None = None
    """Rounds at most; None = 3 x the rounds the budget needs at ``keep_ratio``."""

    def __post_init__(self):
        super().__post_init__()
        within(self, "cluster_ratio", 0, 1, low_open=True)
        within(self, "keep_ratio", 0, 1, low_open=True)
        at_least(self, 1, "kmeans_iterations", "few_shot", "samples_per_prompt", "rounds")
        at_least(self, 0, "pool_rows")
        self.one_sample_when_greedy(samples_per_prompt=self.samples_per_prompt)


@dataclass
class PrismaticPrompts(QuestionFirstPrompts):
    system: str = MISSING
    template: str = MISSING
    """The few-shot prompt; placeholder {examples} (the pool rows shown, each as ``Example i:`` and its text)."""


@STRATEGIES.register("prismatic", PrismaticConfig)
class PrismaticStrategy(Strategy):
    Prompts = PrismaticPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def start(self) -> None:
        context = self.context
        require(bool(context.seed_rows), "task.parts.seed", None,
                "synthesis=prismatic starts its pool from the task's seed rows: the seed part is empty")
        self.sketch = GradientSketch.for_backbone(self.cfg.gradient, context.scorer.backbone, "synthesis.gradient")
        positives = [i for i, label in enumerate(context.anchor_labels) if label == 1]
        if self.cfg.pool_rows is not None and len(positives) > self.cfg.pool_rows:
            positives = sorted(random.Random(self.seed).sample(positives, self.cfg.pool_rows))
        self.initial = ([(self.demo(r), self.format.scored(r)) for r in context.seed_rows]
                        + [(context.anchor_demos[i], context.anchor_conversations[i]) for i in positives])
        self.gradients: dict[str, np.ndarray] = {}
        self.remember([text for text, _ in self.initial], [c for _, c in self.initial])

    def units(self):
        per_round = self.cfg.prompts_per_call * self.cfg.samples_per_prompt * self.cfg.keep_ratio
        yield from range(self.cfg.rounds or 3 * math.ceil(self.n_samples / per_round))

    def remember(self, texts: list[str], conversations: list) -> None:
        """Compute (once per text) the projected gradients of these rows."""
        todo = [(t, c) for t, c in dict(zip(texts, conversations, strict=True)).items() if t not in self.gradients]
        if todo:
            for (text, _), vector in zip(todo, self.sketch([c for _, c in todo], desc="pool gradients"),
                                         strict=True):
                self.gradients[text] = vector

    def pool(self, writer: RowWriter) -> list[str]:
        """The current pool's texts: the initial rows and every kept row, as the template shows them."""
        kept = writer.rows + writer.pending
        self.remember([self.demo(r) for r in kept], [self.format.scored(r) for r in kept])
        return list(dict.fromkeys([text for text, _ in self.initial] + [self.demo(r) for r in kept]))

    def clusters(self, pool: list[str], unit: int) -> tuple[np.ndarray, set[int]]:
        """(centroids, the sparse clusters): k-means of the pool's gradients, and the ``keep_ratio`` share of
        clusters with the fewest pool rows."""
        x_ND = np.stack([self.gradients[t] for t in pool])
        k = max(1, min(len(pool), round(self.cfg.cluster_ratio * len(pool))))
        kmeans = KMeans(k, max_iter=self.cfg.kmeans_iterations, n_init=1, random_state=self.unit_seed(unit))
        assignment = kmeans.fit_predict(x_ND)
        counts_K = np.bincount(assignment, minlength=k)
        by_size = np.argsort(counts_K, kind="stable")
        return kmeans.cluster_centers_, set(by_size[: math.ceil(self.cfg.keep_ratio * k)].tolist())

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        rng = random.Random(self.unit_seed(unit))
        pool = self.pool(writer)
        centroids_KD, sparse = self.clusters(pool, unit)
        writer.tally("rounds")
        prompts = []
        for _ in range(self.cfg.prompts_per_call):
            shots = rng.sample(pool, min(self.cfg.few_shot, len(pool)))
            # each example on lines of its own, so that a candidate copying one is caught as a prompt echo
            examples = "\n\n".join(f"Example {i + 1}:\n{s}" for i, s in enumerate(shots))
            prompts.append(self.prompts.template.format(examples=examples))
        outputs = self.generator.generate([self.chat(p) for p in prompts],
                                          self.params(unit, n=self.cfg.samples_per_prompt))
        raws = [raw for samples in outputs for raw in samples]
        asked = [p for p in prompts for _ in range(self.cfg.samples_per_prompt)]
        candidates = self.candidates_from(raws, unit)
        writer.tally("candidates", len(candidates))
        clean = []
        for prompt, raw in zip(asked, candidates, strict=True):
            fields, reason = writer.check(raw, prompt)  # the hygiene first: gradients cost a backward pass
            if reason:
                writer.reject(reason)
            else:
                clean.append((prompt, raw, self.format.finish(fields, self.task.label)))
        if not clean:
            return
        vectors_ND = self.sketch([self.format.scored(row) for *_, row in clean], desc="candidate gradients")
        nearest = (vectors_ND @ (centroids_KD / np.linalg.norm(centroids_KD, axis=1, keepdims=True)
                                 .clip(1e-12)).T).argmax(axis=1)
        for (prompt, raw, row), cluster, vector in zip(clean, nearest, vectors_ND, strict=True):
            if int(cluster) not in sparse:
                writer.reject("dense_cluster")
            elif writer.offer(raw, self.provenance(unit, prompt, cluster=int(cluster), clusters=len(centroids_KD))):
                self.gradients[self.demo(row)] = vector
