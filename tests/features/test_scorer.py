import numpy as np
import pytest
import torch

from fac_lightning.backbone import load_backbone
from fac_lightning.config import FeaturesConfig
from fac_lightning.features.scorer import FeatureScorer, build_table, role_spans
from fac_lightning.hooks import run_to_layer
from fac_lightning.sae.topk import TopKSAE
from fac_lightning.stages import features as features_stage
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides

CONVERSATIONS = [
    [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "I can't help."}],
    [{"role": "user", "content": "Write a haiku about rain."}],
    [{"role": "user", "content": "Name three prime numbers."}, {"role": "assistant", "content": "2, 3 and 5."}],
]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir)).backbone, CACHE_DIR)
    torch.manual_seed(0)
    return backbone, TopKSAE(64, 128, 4)


def test_roles_split_user_and_response_tokens(tiny):
    backbone, _ = tiny
    ids, roles = role_spans(backbone.tokenizer, CONVERSATIONS[0], 512)
    user = backbone.tokenizer.decode([i for i, r in zip(ids, roles) if r == "user"])
    response = backbone.tokenizer.decode([i for i, r in zip(ids, roles) if r == "assistant"])
    assert "pick a lock" in user and "can't help" not in user and "can't help" in response


@pytest.mark.parametrize("topk", [True, False])
def test_scores_are_the_max_over_kept_positions(tiny, topk):
    backbone, sae = tiny
    scorer = FeatureScorer(backbone, sae, positions="user", topk_per_token=topk)
    table = build_table(scorer, CONVERSATIONS, top_n=2, span_tokens=8)
    # recompute sample 1 by hand: user tokens after the template prefix, excluding special tokens
    ids, roles = role_spans(backbone.tokenizer, CONVERSATIONS[1], 512)
    keep = [p for p, (t, r) in enumerate(zip(ids, roles)) if r == "user" and p >= backbone.prefix_len
            and t not in backbone.tokenizer.all_special_ids]
    with torch.inference_mode():
        acts = run_to_layer(backbone.model, 2, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
        codes = scorer.codes(acts[keep]).max(0).values
    dense = table.matrix().toarray()[1]
    np.testing.assert_allclose(dense, codes.numpy(), rtol=1e-5, atol=1e-6)
    if topk:
        assert ((dense > 0).sum()) <= 4 * len(keep)
    feature = int(np.argmax(dense))
    assert table.spans[feature][0].sample == int(np.argmax(table.matrix().toarray()[:, feature]))
    assert "«" in table.spans[feature][0].text
    span = table.spans[feature][0]  # shaded: each token with the feature's activation, the argmax token last
    assert span.tokens[-1][1] == pytest.approx(span.score, abs=1e-3)
    assert max(act for _, act in span.tokens) <= span.score + 1e-3 and len(span.tokens) <= 8
    assert "".join(piece for piece, _ in span.tokens) == span.text.replace("«", "").replace("»", "")


def test_feature_table_stage_caches_and_resumes(tiny, tmp_path, monkeypatch):
    backbone, sae = tiny
    cfg = FeaturesConfig(chunk_size=1, top_spans=3)
    calls = []
    original = FeatureScorer.score

    def failing_on_third_chunk(self, sequences, masks, offset=0):
        calls.append(offset)
        if offset == 2 and len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, sequences, masks, offset)

    monkeypatch.setattr(FeatureScorer, "score", failing_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        features_stage.feature_table("toy", CONVERSATIONS, backbone, sae, tmp_path / "sae", cfg, tmp_path)
    table, folder = features_stage.feature_table("toy", CONVERSATIONS, backbone, sae, tmp_path / "sae", cfg, tmp_path)
    assert calls == [0, 1, 2, 2]  # the rerun scored only the unfinished chunk
    assert (folder / "table.npz").exists() and table.num_samples == 3
    calls.clear()
    again, _ = features_stage.feature_table("toy", CONVERSATIONS, backbone, sae, tmp_path / "sae", cfg, tmp_path)
    assert calls == [] and np.array_equal(again.score, table.score)
