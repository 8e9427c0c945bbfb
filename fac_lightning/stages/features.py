"""The ``features`` stage: a FeatureTable per data set, cached as an artifact and resumable chunk by chunk.

Artifact: ``<artifacts_dir>/features/<dataset>-<hash>/`` (``table.npz``, ``spans.json``, ``manifest.json``); the hash
covers exactly what determines the scores (``plan.table_stage``): the SAE artifact (which holds the backbone's dtype),
the data set's content, the pooling settings and the backbone's max length. Not delta: a table keeps every score above ``features.floor``, so any threshold
reads the same table. While scoring, each finished chunk of samples is saved in ``<artifact>.partial/``; a rerun
skips the chunks already there.
"""

import logging
from pathlib import Path

import numpy as np
from rich.progress import track

from fac_lightning.artifacts import REBUILD, ensure_artifact, key_fields, write_json_atomic
from fac_lightning.backbone import Backbone
from fac_lightning.config import FeaturesConfig
from fac_lightning.data.examples import Conversation
from fac_lightning.features.scorer import FeatureScorer, ScoredChunk, chunks, table_from_chunk
from fac_lightning.features.table import FeatureTable

log = logging.getLogger(__name__)


def feature_table(name: str, conversations: list[Conversation], backbone: Backbone, sae, sae_dir: Path,
                  cfg: FeaturesConfig, artifacts_dir: str | Path) -> tuple[FeatureTable, Path]:
    """Load the cached table of ``conversations`` or score them (resuming a partial run); return it and its folder."""
    from fac_lightning.plan import table_stage

    stage = table_stage(str(artifacts_dir), Path(sae_dir).name, name, conversations, cfg, backbone.cfg.max_length)
    final = ensure_artifact(stage.path,
                            lambda work: score_table(name, conversations, backbone, sae, sae_dir, cfg, work),
                            f"feature table of {name}", on_corrupt=REBUILD)  # cheap and deterministic
    return FeatureTable.load(final), final


def score_table(name: str, conversations: list[Conversation], backbone: Backbone, sae, sae_dir: Path,
                cfg: FeaturesConfig, work: Path) -> None:
    scorer = FeatureScorer(backbone, sae, cfg.positions, cfg.topk_per_token, cfg.floor, cfg.batch_size,
                           backbone.cfg.max_length)
    sequences, masks = scorer.tokenize(conversations)
    parts = []
    for start, end in track(list(chunks(len(sequences), cfg.chunk_size)), description=f"scoring {name}"):
        path = work / f"chunk-{start:07d}.npz"
        if not path.exists():
            chunk = scorer.score(sequences[start:end], masks[start:end], offset=start)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **chunk.__dict__)
            tmp.replace(path)
        z = np.load(path)
        parts.append(ScoredChunk(**{k: z[k] for k in ScoredChunk.__dataclass_fields__}))
    merged = ScoredChunk(*(np.concatenate([getattr(p, k) for p in parts]) for k in ScoredChunk.__dataclass_fields__))
    table = table_from_chunk(merged, sequences, masks, scorer, cfg.top_spans, cfg.span_tokens, cfg.shaded_spans)
    for path in work.glob("chunk-*.npz"):
        path.unlink()
    table.save(work)
    write_json_atomic(work / "manifest.json", {
        "stage": "features", "dataset": name, "samples": len(sequences), "sae": str(sae_dir),
        "config": key_fields(cfg), "dtype": str(backbone.model.dtype), "max_length": backbone.cfg.max_length,
        "nonzero": len(table.score),
    })
    log.info("scored feature table of %s: %d samples, %d stored scores", name, len(sequences), len(table.score))
