"""evaluate.py modes end to end on a tiny random Llama (the real config tree, real stages, tiny inputs)."""

import json

import pytest

import evaluate
from fac_lightning.stages.feature_space import anchor_set, build_feature_space
from tests.conftest import compose_config, tiny_backbone_overrides


def tiny_config(tiny_llama_dir, tmp_path, *overrides):
    cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), "logger=csv", "sae.k=8", "sae.expansion_factor=4",
                          "sae.batch_tokens=256", "sae.train_tokens=2560", "sae.val_every_steps=1000",
                          "activations.max_length=64", "activations.buffer_tokens=1024",
                          "activations.heldout_sequences=4", "embedder=backbone", *overrides], tmp_path)
    cfg.data.sources = cfg.data.sources[2:3]
    cfg.data.sources[0].max_rows = 80
    cfg.task.anchor_positive[0].max_rows = 30
    cfg.task.anchor_negative[0].max_rows = 30
    return cfg


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dataset_mode_writes_fac_and_text_metrics(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "synthetic.jsonl", [{"text": f"How do I hurt someone number {i}?", "label": 1}
                                                      for i in range(6)])
    cfg = tiny_config(tiny_llama_dir, tmp_path, f"dataset={data}", "relevance.method=all")
    result = evaluate.evaluate_dataset(cfg, build_feature_space(cfg))
    assert result["samples"] == 6 and 0 < result["fac"]["binary"] < 1
    assert result["missing_features"] > 0 and result["relevant_anchor_features"] > result["missing_features"]
    assert set(result["text"]) >= {"distinct_1", "distinct_2", "entropy_2", "self_bleu", "embedding_cosine_distance"}
    assert json.loads((tmp_path / "out" / "dataset_metrics.json").read_text())["fac"] == result["fac"]


def test_anchor_against_itself_has_full_coverage(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "relevance.method=all", "embedder=none")
    space = build_feature_space(cfg)
    anchor_rows = [{"text": c[0]["content"]} for c in anchor_set(cfg)[0]]
    cfg.dataset = str(write_jsonl(tmp_path / "anchor.jsonl", anchor_rows))
    result = evaluate.evaluate_dataset(cfg, space)
    assert result["fac"]["binary"] == 1.0 and result["missing_features"] == 0


def test_features_mode_writes_cards(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "mode=features", "cards=3", "relevance.method=all")
    path = evaluate.write_feature_cards(cfg, build_feature_space(cfg))
    text = path.read_text()
    assert text.count("### Feature") == 3 and "Top-activating spans" in text and "«" in text


def test_unknown_dataset_is_named(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "dataset=no_such_set")
    with pytest.raises(FileNotFoundError, match="no_such_set"):
        evaluate.dataset_conversations(cfg)
