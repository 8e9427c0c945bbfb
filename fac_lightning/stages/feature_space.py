"""A task's feature space: the SAE, the anchor set's FeatureTable and the task-relevant features R.

Each piece is a cached artifact (SAE: ``stages.sae``; tables: ``stages.features``; relevance:
``<artifacts_dir>/relevance/<anchor table>-<hash>/`` with ``relevance.json`` and, for the LLM judge, the
append-only ``judgements.jsonl`` in its ``.partial`` folder that lets an interrupted judge resume feature by
feature). Their folders are named by the run plan (``plan.RunPlan``).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fac_lightning.artifacts import REBUILD, REFUSE, ensure_artifact, write_json_atomic
from fac_lightning.backbone import Backbone, load_backbone
from fac_lightning.checks import ConfigError
from fac_lightning.config import FeaturesConfig
from fac_lightning.data.examples import Conversation
from fac_lightning.features.fac import WEIGHTINGS, fac, missing_features, relevant_anchor_features
from fac_lightning.features.table import FeatureTable
from fac_lightning.files import read_json
from fac_lightning.generation import build_generator
from fac_lightning.plan import RunPlan
from fac_lightning.relevance import RELEVANCE, select_relevant
from fac_lightning.sae.topk import load_sae
from fac_lightning.stages.features import feature_table
from fac_lightning.stages.sae import run_sae_stage

VERSION = 1
"""The relevance selections' stage version (``plan.RunPlan.relevant``; each method has its own ``version`` too)."""


@dataclass
class FeatureSpace:
    backbone: Backbone
    sae: object
    sae_dir: Path
    anchor: FeatureTable
    labels: np.ndarray
    """Anchor sample labels: 1 = task-positive side."""
    relevant: np.ndarray
    """(F,) bool mask of the task-relevant features R."""
    records: dict[int, dict]
    """Per-feature relevance evidence (statistics or judge verdicts)."""
    features: FeaturesConfig
    """The scoring settings every table of this space is built with, and its threshold delta."""
    artifacts_dir: str

    @property
    def delta(self) -> float:
        return self.features.delta

    def table(self, name: str, conversations: list[Conversation]) -> FeatureTable:
        """The FeatureTable of a data set (cached as an artifact, ``stages.features``)."""
        return feature_table(name, conversations, self.backbone, self.sae, self.sae_dir, self.features,
                             self.artifacts_dir)[0]

    def coverage(self, table: FeatureTable | None) -> dict[str, float]:
        """FAC of a data set's table against the anchor's relevant features, under each weighting (0 if empty)."""
        return {w: fac(table, self.anchor, self.delta, self.relevant, w) if table else 0.0 for w in WEIGHTINGS}

    def missing(self, table: FeatureTable) -> np.ndarray:
        """Relevant anchor features ``table`` does not activate, most frequent on the anchor first."""
        return missing_features(self.anchor, table, self.delta, self.relevant)

    def relevant_anchor(self) -> np.ndarray:
        return relevant_anchor_features(self.anchor, self.delta, self.relevant)


def build_feature_space(run: RunPlan, backbone: Backbone | None = None) -> FeatureSpace:
    backbone = backbone or load_backbone(run.backbone, run.paths.cache_dir)
    sae_dir = run_sae_stage(run, backbone)
    sae, _ = load_sae(sae_dir, backbone.device)
    conversations, labels = run.anchor_set
    labels = np.array(labels)
    anchor, _ = feature_table(run.anchor.label, conversations, backbone, sae, sae_dir, run.features, run.root)
    relevance, delta = run.relevance, run.features.delta

    def build(work: Path) -> None:  # a killed judge resumes from work/judgements.jsonl, feature by feature
        relevant, records = select_relevant(
            relevance, anchor, labels, delta, run.task.relevance_rubric,
            lambda: build_generator(run.generator, backbone), work / "judgements.jsonl")
        write_json_atomic(work / "relevance.json", {
            "method": relevance.method, "delta": delta, "relevant": np.flatnonzero(relevant).tolist(),
            "records": {str(k): {kk: vv for kk, vv in v.items() if kk != "calls"} for k, v in records.items()}})

    # label contrast and "all" are cheap and deterministic: rebuilt if corrupted; judge verdicts cost calls: refused
    judged = RELEVANCE.get(relevance.method).cls.uses_generator
    saved = read_json(ensure_artifact(run.relevant.path, build, "relevance", on_corrupt=REFUSE if judged else REBUILD,
                                        hint="Rebuilding asks the judge again") / "relevance.json")
    relevant = np.zeros(anchor.num_features, dtype=bool)
    relevant[saved["relevant"]] = True
    records = {int(k): v for k, v in saved["records"].items()}
    space = FeatureSpace(backbone, sae, sae_dir, anchor, labels, relevant, records, run.features, run.root)
    if not space.relevant_anchor().any():  # FAC would be NaN and no strategy would have a target
        raise ConfigError("features.delta", space.delta, f"leaves no relevant anchor feature: relevance="
                          f"{relevance.method} kept {int(relevant.sum())} features and the anchor activates "
                          f"{int(anchor.active(space.delta).sum())} above this delta (its scores range over "
                          f"{anchor.score_range()}); lower features.delta, or use another relevance method")
    return space

