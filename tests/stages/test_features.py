"""Feature-table keys hold exactly what determines the scores: a delta sweep scores each table once; the backbone's
dtype (through the SAE, trained on activations in that dtype) and its max length re-score."""

from fac_lightning.features.scorer import FeatureScorer
from fac_lightning.plan import plan
from fac_lightning.stages.feature_space import build_feature_space
from tests.conftest import tiny_config


def folders(path) -> int:
    return sum(p.is_dir() for p in path.iterdir())  # artifacts, not their .lock files


def count_scoring(monkeypatch) -> list[int]:
    calls, score = [], FeatureScorer.score
    monkeypatch.setattr(FeatureScorer, "score", lambda self, *a, **k: (calls.append(1), score(self, *a, **k))[1])
    return calls


def test_a_delta_sweep_scores_the_anchor_once(tiny_llama_dir, tmp_path, monkeypatch):
    calls = count_scoring(monkeypatch)
    spaces = [build_feature_space(plan(tiny_config(tiny_llama_dir, tmp_path, "relevance=all", f"features.delta={delta}")))
              for delta in (0, 0.03, 0.05)]  # the tiny SAE scores ~0.03
    assert len(calls) == 1 and folders(tmp_path / "artifacts" / "features") == 1
    active = [int(space.relevant.sum()) for space in spaces]
    assert active[0] > active[1] > active[2]  # the same table, read at three thresholds


def test_changing_the_backbone_dtype_or_max_length_rescores(tiny_llama_dir, tmp_path, monkeypatch):
    build_feature_space(plan(tiny_config(tiny_llama_dir, tmp_path, "relevance=all")))
    calls = count_scoring(monkeypatch)
    for override in ("backbone.dtype=bfloat16", "backbone.max_length=32"):
        build_feature_space(plan(tiny_config(tiny_llama_dir, tmp_path, "relevance=all", override)))
    assert len(calls) == 2 and folders(tmp_path / "artifacts" / "features") == 3
    # the SAE reads activations in the backbone's dtype (another SAE in bf16), not its max length (the same SAE)
    assert folders(tmp_path / "artifacts" / "sae") == 2
