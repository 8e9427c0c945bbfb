"""The ``synthesis`` stage: ensure the feature space, find the missing features, run a strategy, measure the result.

Artifact: ``<artifacts_dir>/synthetic/<task>-<strategy>-<hash>/`` with ``rows.jsonl`` (task rows + provenance)
and ``manifest.json`` (config, counts, rejections by reason, FAC and text diversity of the rows against the task
anchor). Every strategy writes one, real-data ones included. Rows are written into ``<artifact>.partial/`` unit by
unit; a rerun continues from the last finished unit.
"""

import logging
import time
from pathlib import Path

import numpy as np

from fac_lightning.artifacts import REBUILD, REFUSE, ensure_artifact, verify_artifact, write_json_atomic
from fac_lightning.backbone import Backbone, load_backbone
from fac_lightning.checks import ConfigError
from fac_lightning.data.task_parts import task_part
from fac_lightning.features.scorer import FeatureScorer
from fac_lightning.files import read_rows
from fac_lightning.generation import build_generator
from fac_lightning.generation.base import MeteredGenerator
from fac_lightning.metrics.diversity import text_metrics
from fac_lightning.plan import RunPlan
from fac_lightning.stages.feature_space import FeatureSpace, build_feature_space
from fac_lightning.synthesis.context import SynthesisContext

log = logging.getLogger(__name__)


VERSION = 1
"""The row sets' stage version (``plan.RunPlan.rows``; each strategy has its own ``version`` too): bump it when a
change of the writer or the manifest changes what a row set holds."""


SYNTHESIS = ("sae", "feature_space", "synthesis")
"""What ``synthesize.py`` runs (``plan.USES``)."""


def run_synthesis_stage(run: RunPlan, backbone: Backbone | None = None) -> Path:
    """Ensure the run's row set (synthetic or real) exists; return its folder. ``run``: checked by ``preflight``
    (``SYNTHESIS``, or the whole chain's uses)."""
    strategy = run.strategy
    # real rows are cheap to write again; sampled rows cost generation time, so a corrupted set is refused
    return ensure_artifact(run.rows().path, lambda work: synthesize(run, backbone, work), "row set",
                           on_corrupt=REFUSE if strategy.generative else REBUILD, hint=ROWS_REBUILD)


ROWS_REBUILD = ("Its rows were sampled from the generator, which takes minutes to hours, so they are not resampled "
                "behind your back; delete the folder to synthesize them again (the same seed and config give the same "
                "rows with the transformers engine)")


def read_row_set(folder: str | Path) -> list[dict]:
    """The rows of a finished row set (its checksums verified first); a line that is not JSON is named."""
    return list(read_rows(verify_artifact(folder, "row set", ROWS_REBUILD) / "rows.jsonl"))


def synthesis_context(run: RunPlan, space: FeatureSpace) -> SynthesisContext:
    """What the run's strategy may use: the missing features F(anchor) ∩ R \\ F(seed), the anchor's spans and table, the
    seed and anchor rows as the strategy shows them, and the scorer."""
    strategy = run.strategy
    seed = task_part(strategy.task, "seed", run.data_dir)
    seed_rows = [strategy.format.from_example(e) for e in seed]
    seed_table = space.table(run.seed_table.label, [e.conversation for e in seed])
    missing = space.missing(seed_table)
    if strategy.targets_missing and not len(missing):
        raise ConfigError("features.delta", space.delta, f"leaves no missing feature: the seed part activates all "
                          f"{int(space.relevant_anchor().sum())} relevant anchor features above it (seed scores "
                          f"{seed_table.score_range()}, anchor scores {space.anchor.score_range()}), so synthesis="
                          f"{strategy.name} has nothing to target; raise features.delta, or use a smaller seed part")
    features = run.features
    scorer = FeatureScorer(space.backbone, space.sae, features.positions, features.topk_per_token,
                           batch_size=features.batch_size, max_length=space.backbone.cfg.max_length)
    anchor_conversations, anchor_labels = run.anchor_set
    return SynthesisContext(
        delta=space.delta, missing=[int(f) for f in missing], records=space.records, spans=space.anchor.spans,
        anchor=space.anchor, table=space.table, anchor_conversations=anchor_conversations,
        anchor_labels=np.array(anchor_labels),
        anchor_demos=[strategy.conversation_demo(c) for c in anchor_conversations],
        seed_demos=[strategy.demo(r) for r in seed_rows], seed_rows=seed_rows,
        seed_texts=[strategy.format.query(r) for r in seed_rows], scorer=scorer, tokenizer=space.backbone.tokenizer,
        data_dir=run.data_dir, cache_dir=run.paths.cache_dir)


def synthesize(run: RunPlan, backbone: Backbone | None, work: Path) -> None:
    started, strategy = time.time(), run.strategy
    backbone = backbone or load_backbone(run.backbone, run.paths.cache_dir)
    space = build_feature_space(run, backbone)
    context = synthesis_context(run, space)
    missing, scorer = context.missing, context.scorer
    writer = strategy.writer(work)
    generator = (MeteredGenerator(build_generator(run.generator, backbone), backbone.tokenizer, writer)
                 if strategy.generative else None)
    log.info("synthesis=%s: %d missing features, budget %s", strategy.name, len(missing),
             run.n_samples if strategy.budgeted else "none (real data)")
    strategy.run(writer, generator, context)
    rows = writer.rows
    measured = [r for r in rows if strategy.format.measured(r, strategy.task.label)]
    conversations = [strategy.format.scored(r) for r in measured]
    table = space.table(f"{run.task.name}-{strategy.name}", conversations) if measured else None
    tokens = [len(ids) for ids in scorer.tokenize(conversations)[0]]  # what the SAE scored: row length confounds FAC
    write_json_atomic(work / "manifest.json", {
        "stage": "synthesis", "strategy": strategy.name, "generator": generator.name if generator else None,
        "rows": len(rows), "measured_rows": len(measured), "n_samples": run.n_samples if strategy.budgeted else None,
        "rejections": dict(writer.rejections), "tallies": dict(writer.tallies), "units": writer.units_done,
        "missing_features": len(missing), "relevant_anchor_features": int(space.relevant_anchor().sum()),
        "fac": space.coverage(table),
        "missing_features_covered": int(table.active(space.delta)[missing].sum()) if table else 0,
        "text": {**text_metrics([strategy.format.query(r) for r in measured]), "mean_tokens": float(np.mean(tokens))}
        if measured else {},
        "seconds": time.time() - started, "config": run.config,
    })
    (work / "state.json").unlink(missing_ok=True)  # a run that finished no unit wrote none
    log.info("row set: %d rows, FAC %.3f", len(rows), space.coverage(table)["binary"])
