"""What a strategy may use besides its config: the feature space, the missing features, the task's data."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fac_lightning.data.examples import Conversation
from fac_lightning.features.scorer import FeatureScorer
from fac_lightning.features.table import FeatureTable


@dataclass
class SynthesisContext:
    delta: float
    missing: list[int]
    """F(anchor) ∩ R \\ F(seed), most frequent on the anchor first."""
    records: dict[int, dict]
    """Relevance evidence per feature (judge explanations when relevance=llm_judge)."""
    spans: dict
    """Top-activating anchor spans per feature."""
    anchor: FeatureTable
    """The anchor's table (frequencies and mean activations of the features)."""
    table: Callable[[str, list[Conversation]], FeatureTable]
    """The cached feature table of a named data set (scored once, then read from its artifact)."""
    anchor_conversations: list[Conversation]
    """The anchor's samples (positive side first), indexed as the spans' ``sample``."""
    anchor_labels: np.ndarray
    """1 for the anchor's positive side (``task.parts.anchor_positive``), 0 for its negative side."""
    anchor_demos: list[str]
    """Each anchor sample written as the strategy's template writes a row (``Strategy.conversation_demo``), indexed
    as the spans' ``sample``."""
    seed_demos: list[str]
    """Each seed row as a demonstration answer (``Strategy.demo``)."""
    seed_rows: list[dict]
    """The seed part's rows in the task's format."""
    seed_texts: list[str]
    """Each seed row's user message (``RowFormat.query``: novelty checks)."""
    scorer: FeatureScorer
    tokenizer: object
    """The backbone's tokenizer (Magpie renders its chat template)."""
    data_dir: str
    """The local data mirror (real-data strategies read the task's parts)."""
    cache_dir: str
    """Where converted backbones are cached (a strategy that loads a saved model reads its backbone from there)."""

    def scores(self, conversations: list[Conversation]) -> np.ndarray:
        """(N, F) g(x) of candidate rows (``RowFormat.scored``)."""
        if not conversations:
            return np.zeros((0, self.scorer.sae.num_latents), dtype=np.float32)
        return self.scorer.dense_scores(conversations)
