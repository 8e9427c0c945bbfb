"""The ``synthesis`` stage: ensure the feature space, find the missing features, run a strategy, measure the result.

Artifact: ``<artifacts_dir>/synthetic/<task>-<strategy>-<hash>/`` with ``rows.jsonl`` (task fields + provenance)
and ``manifest.json`` (config, counts, rejections by reason, FAC of the result against the task anchor). Rows are
written into ``<artifact>.partial/`` unit by unit; a rerun continues from the last finished unit.
"""

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fac_lightning.artifacts import artifact_lock, config_hash, write_json_atomic
from fac_lightning.backbone import Backbone, load_backbone
from fac_lightning.chat import format_chat
from fac_lightning.data.task_parts import parts_fingerprint, task_part
from fac_lightning.features.fac import WEIGHTINGS, fac, missing_features
from fac_lightning.features.scorer import FeatureScorer
from fac_lightning.generation import build_generator
from fac_lightning.stages.feature_space import anchor_set, build_feature_space
from fac_lightning.stages.sae import BACKBONE_KEYS
from fac_lightning.synthesis.base import RowWriter, strategy_class
from fac_lightning.synthesis.context import SynthesisContext
from fac_lightning.synthesis.rows import row_conversation

log = logging.getLogger(__name__)
_MARK = "\x00USER_MESSAGE\x00"


def synthetic_artifact_dir(cfg: DictConfig) -> Path:
    key = config_hash({k: cfg.backbone[k] for k in BACKBONE_KEYS}, cfg.sae, cfg.activations, cfg.data, cfg.task,
                      parts_fingerprint(cfg.task, cfg.paths.data_dir), cfg.features, cfg.relevance, cfg.synthesis,
                      cfg.generator, cfg.n_samples, cfg.seed)
    return Path(cfg.paths.artifacts_dir) / "synthetic" / f"{cfg.task.name}-{cfg.synthesis.strategy}-{key}"


def pre_query_template(tokenizer, system: str | None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _MARK}]
    return format_chat(tokenizer, messages).split(_MARK)[0]


def first_user_texts(conversations) -> list[str]:
    return [c[0]["content"] for c in conversations]


def run_synthesis_stage(cfg: DictConfig, backbone: Backbone | None = None) -> Path:
    """Ensure the synthetic data set for ``cfg`` exists; return its folder."""
    final = synthetic_artifact_dir(cfg)
    if (final / "manifest.json").exists():
        log.info("synthetic data set exists, reusing %s", final)
        return final
    with artifact_lock(final):
        if not (final / "manifest.json").exists():  # another process may have built it while we waited
            synthesize(cfg, backbone, final)
    return final


def synthesize(cfg: DictConfig, backbone: Backbone | None, final: Path) -> None:
    started = time.time()
    backbone = backbone or load_backbone(cfg.backbone, cfg.paths.cache_dir)
    space = build_feature_space(cfg, backbone)
    seed_conversations = task_part(cfg.task, "seed_data", cfg.paths.data_dir)
    seed_table = space.table(f"{cfg.task.name}-seed", seed_conversations, cfg)
    delta = space.delta
    missing = missing_features(space.anchor, seed_table, delta, space.relevant)
    scorer = FeatureScorer(backbone, space.sae, cfg.features.positions, cfg.features.topk_per_token,
                           batch_size=cfg.features.batch_size, max_length=backbone.cfg.max_length)
    context = SynthesisContext(
        n_samples=cfg.n_samples, delta=delta, missing=[int(f) for f in missing], records=space.records,
        spans=space.anchor.spans, anchor_texts=first_user_texts(anchor_set(cfg)[0]),
        seed_texts=first_user_texts(seed_conversations), scorer=scorer,
        pre_query=pre_query_template(backbone.tokenizer, cfg.task.prompts.magpie_system))
    synthesis_cfg = OmegaConf.to_object(cfg.synthesis)
    generator = build_generator(OmegaConf.to_object(cfg.generator), backbone)
    strategy = strategy_class(cfg.synthesis.strategy)(synthesis_cfg, OmegaConf.to_object(cfg.task), generator,
                                                       cfg.seed, context)
    work = final.with_name(final.name + ".partial")
    writer = RowWriter(work, OmegaConf.to_object(cfg.task), cfg.n_samples, synthesis_cfg.near_duplicate_rouge,
                       synthesis_cfg.min_distinct_3)
    log.info("synthesis=%s: %d missing features, budget %d rows", strategy.name, len(missing), cfg.n_samples)
    strategy.run(writer)
    rows = [row_conversation(r) for r in writer.rows]
    gen_table = space.table(f"{cfg.task.name}-{strategy.name}", rows, cfg) if rows else None
    coverage = {w: (fac(gen_table, space.anchor, delta, space.relevant, w) if gen_table else 0.0)
                for w in WEIGHTINGS}
    write_json_atomic(work / "manifest.json", {
        "stage": "synthesis", "strategy": strategy.name, "generator": generator.name, "rows": len(writer.rows),
        "n_samples": cfg.n_samples, "rejections": dict(writer.rejections), "tallies": dict(writer.tallies),
        "units": writer.units_done,
        "missing_features": len(missing), "relevant_anchor_features": int((space.anchor.active(delta)
                                                                            & space.relevant).sum()),
        "fac": coverage, "missing_features_covered": int(gen_table.active(delta)[missing].sum()) if gen_table else 0,
        "seconds": time.time() - started, "config": OmegaConf.to_container(cfg, resolve=True),
    })
    (work / "state.json").unlink()
    work.rename(final)
    log.info("synthetic set: %d rows, FAC %.3f -> %s", len(writer.rows), coverage["binary"], final)

