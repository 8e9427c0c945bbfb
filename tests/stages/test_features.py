"""Feature-table keys hold exactly what determines the scores: a delta sweep scores each table once; the backbone's
dtype and max length re-score."""

from fac_lightning.features.scorer import FeatureScorer
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
    spaces = [build_feature_space(tiny_config(tiny_llama_dir, tmp_path, "relevance=all", f"features.delta={delta}"))
              for delta in (0, 0.03, 0.05)]  # the tiny SAE scores ~0.03
    assert len(calls) == 1 and folders(tmp_path / "artifacts" / "features") == 1
    active = [int(space.relevant.sum()) for space in spaces]
    assert active[0] > active[1] > active[2]  # the same table, read at three thresholds


def test_changing_the_backbone_dtype_or_max_length_rescores(tiny_llama_dir, tmp_path, monkeypatch):
    build_feature_space(tiny_config(tiny_llama_dir, tmp_path, "relevance=all"))
    calls = count_scoring(monkeypatch)
    for override in ("backbone.dtype=bfloat16", "backbone.max_length=32"):
        # the SAE does not depend on either, so it is reused; the anchor table is scored again
        build_feature_space(tiny_config(tiny_llama_dir, tmp_path, "relevance=all", override))
    assert len(calls) == 2 and folders(tmp_path / "artifacts" / "features") == 3
    assert folders(tmp_path / "artifacts" / "sae") == 1


def test_shaded_spans_change_the_feature_table_not_the_row_set():
    from omegaconf import OmegaConf

    from fac_lightning.stages.synthesis import synthetic_artifact_dir
    from fac_lightning.synthesis.base import build_strategy
    from tests.conftest import compose_config

    a, b = compose_config(["synthesis=fac"]), compose_config(["synthesis=fac", "features.shaded_spans=2"])
    assert synthetic_artifact_dir(a, build_strategy(a)) == synthetic_artifact_dir(b, build_strategy(b))
    assert OmegaConf.to_object(a.features).table_key() != OmegaConf.to_object(b.features).table_key()
