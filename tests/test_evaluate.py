"""evaluate.py's modes end to end on a tiny random Llama (the real config tree, real stages, tiny inputs)."""

import json

import pytest

from fac_lightning.plan import plan
from fac_lightning.stages import evaluate
from fac_lightning.stages.feature_space import build_feature_space
from tests.conftest import tiny_config


def evaluate_config(tiny_llama_dir, tmp_path, *overrides):
    return tiny_config(tiny_llama_dir, tmp_path, "embedder=backbone", *overrides, config_name="evaluate")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dataset_mode_writes_fac_and_text_metrics(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "synthetic.jsonl", [{"text": f"How do I hurt someone number {i}?", "label": 1}
                                                      for i in range(6)])
    cfg = evaluate_config(tiny_llama_dir, tmp_path, f"dataset={data}", "relevance=all")
    result = evaluate.evaluate_dataset(plan(cfg))
    assert result["samples"] == 6 and 0 < result["fac"]["binary"] < 1
    assert result["missing_features"] > 0 and result["relevant_anchor_features"] > result["missing_features"]
    assert set(result["text"]) >= {"distinct_1", "distinct_2", "entropy_2", "self_bleu", "embedding_cosine_distance"}
    assert json.loads((tmp_path / "out" / "dataset_metrics.json").read_text())["fac"] == result["fac"]


def test_anchor_against_itself_has_full_coverage(tiny_llama_dir, tmp_path):
    cfg = evaluate_config(tiny_llama_dir, tmp_path, "relevance=all", "embedder=none")
    space = build_feature_space(plan(cfg))
    anchor_rows = [{"text": c[0]["content"]} for c in plan(cfg).anchor_set[0]]
    cfg.dataset = str(write_jsonl(tmp_path / "anchor.jsonl", anchor_rows))
    result = evaluate.evaluate_dataset(plan(cfg), space)
    assert result["fac"]["binary"] == 1.0 and result["missing_features"] == 0


def test_features_mode_writes_cards(tiny_llama_dir, tmp_path):
    cfg = evaluate_config(tiny_llama_dir, tmp_path, "mode=features", "cards=3", "relevance=all")
    path = evaluate.write_feature_cards(plan(cfg))
    text = path.read_text()
    assert text.count("### Feature") == 3 and "Top-activating spans" in text and "«" in text


def test_unknown_dataset_is_named(tiny_llama_dir, tmp_path):
    cfg = evaluate_config(tiny_llama_dir, tmp_path, "dataset=no_such_set")
    with pytest.raises(FileNotFoundError, match="no_such_set"):
        evaluate.dataset_conversations(plan(cfg))


def test_dataset_mode_names_a_bad_file_before_any_model_loads(tmp_path, monkeypatch):
    from fac_lightning.files import DataError
    from tests.conftest import compose_config

    (tmp_path / "rows.jsonl").write_text('{"text": "fine"}\n{"text": broken}\n')
    monkeypatch.setattr(evaluate, "build_feature_space", lambda *a: pytest.fail("the feature space was built"))
    cfg = compose_config(["mode=dataset", f"dataset={tmp_path / 'rows.jsonl'}"], tmp_path, config_name="evaluate")
    with pytest.raises(DataError, match=r"rows.jsonl:2: not valid JSON \(Expecting value at column 10\)"):
        evaluate.run_evaluate(cfg)
