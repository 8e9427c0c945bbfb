"""Bradley-Terry reward models: TRL's loss, left truncation, and a head that learns a planted preference."""

import pytest
import torch
import torch.nn.functional as F

from fac_lightning.backbone import load_backbone
from fac_lightning.finetune.base import build_finetune
from fac_lightning.finetune.reward import bradley_terry_loss, encode_sides
from fac_lightning.plan import plan
from tests.conftest import CACHE_DIR, compose_config, tiny_backbone_overrides


def test_loss_is_trls_with_margin_and_reward_centring():
    chosen_B, rejected_B, margin_B = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.5, 0.5]), \
        torch.tensor([0.0, 1.0, 0.2])
    plain = -F.logsigmoid(chosen_B - rejected_B - margin_B).mean()
    assert bradley_terry_loss(chosen_B, rejected_B, margin_B, None) == pytest.approx(plain.item())
    centred = plain + 0.01 * ((chosen_B + rejected_B) ** 2).mean()
    assert bradley_terry_loss(chosen_B, rejected_B, margin_B, 0.01) == pytest.approx(centred.item())
    # -log σ(0) = log 2: no preference at all
    assert bradley_terry_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), None) == pytest.approx(0.6931, abs=1e-4)


def test_sides_are_chat_templated_and_cut_from_the_left(smollm2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    conversation = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "The answer."}]
    full, = encode_sides(tokenizer, [conversation], 10_000)
    cut, = encode_sides(tokenizer, [conversation], 32)
    assert len(full) > 200 and cut == full[-32:]
    assert "The answer." in tokenizer.decode(cut)  # the judged answer survives truncation


def planted_pairs(n: int, offset: int = 0) -> list[dict]:
    """Pairs whose chosen answer is polite and on topic and whose rejected answer is a curt dismissal."""
    topics = ["bread", "tea", "rain", "trains", "maps", "cats", "chess", "glue", "soap", "kites", "clocks", "moss"]
    rows = []
    for i in range(offset, offset + n):
        topic = topics[i % len(topics)]
        rows.append({"prompt": [{"role": "user", "content": f"Tell me something about {topic}, number {i}."}],
                     "chosen": [{"role": "assistant", "content": f"Gladly! Here is a fact about {topic}: it is "
                                                                 f"interesting in many ways."}],
                     "rejected": [{"role": "assistant", "content": "No. Go away."}]})
    return rows


@pytest.mark.parametrize("kind,epochs,lr", [("reward_head", 30, 3e-2), ("reward_lora", 3, 3e-3)])
def test_a_reward_model_learns_a_planted_preference_and_loads_back(tiny_llama_dir, tmp_path, kind, epochs, lr):
    cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), f"finetune={kind}", f"finetune.epochs={epochs}",
                          f"finetune.lr={lr}", "finetune.batch_size=4", "finetune.accumulate_grad_batches=1",
                          "finetune.max_length=64", "logger=csv", f"paths.output_dir={tmp_path}"])
    backbone = load_backbone(cfg.backbone, CACHE_DIR)
    finetune = build_finetune(cfg.finetune)
    finetune.train(planted_pairs(24), backbone, tmp_path, plan(cfg).fit_context(None))
    model = finetune.load(tmp_path, backbone)
    test = planted_pairs(12, offset=100)
    chosen = model.score([r["prompt"] + r["chosen"] for r in test])
    rejected = model.score([r["prompt"] + r["rejected"] for r in test])
    assert chosen.shape == (12,) and (chosen > rejected).mean() == 1.0


@pytest.mark.parametrize("kind,accumulate,every,kills,resumed_from", [
    ("reward_head", 1, 3, [7], 6),     # from the step-6 checkpoint, in epoch 2
    ("reward_head", 1, 3, [5], 4),     # from the epoch-end checkpoint: epoch 2 in the uninterrupted order
    ("reward_head", 2, 1, [7, 1], 6),  # killed again inside an accumulation: no checkpoint was written there
    ("reward_lora", 2, 1, [7, 1], 6),
])
def test_a_killed_fit_resumes_at_the_batch_it_reached(tiny_llama_dir, tmp_path, monkeypatch, kind, accumulate, every,
                                                       kills, resumed_from):
    """2 epochs of 4 batches, killed (and rerun) after ``kills`` batches per process: the last rerun trains on the
    uninterrupted fit's batches from ``resumed_from`` on, in its order, and ends with its rewards."""
    import pytorch_lightning as pl

    from fac_lightning.finetune.reward import RewardModule

    cfg = compose_config([*tiny_backbone_overrides(tiny_llama_dir), f"finetune={kind}", "finetune.epochs=2",
                          "finetune.batch_size=2", f"finetune.accumulate_grad_batches={accumulate}",
                          "finetune.lr=1e-2", f"finetune.checkpoint_every_n_steps={every}", "finetune.max_length=64",
                          "logger=csv", f"paths.output_dir={tmp_path}",
                          *(["finetune.lora_dropout=0"] if kind == "reward_lora" else [])])
    backbone = load_backbone(cfg.backbone, CACHE_DIR)
    rows, test = planted_pairs(8), planted_pairs(6, offset=100)
    original = RewardModule.training_step

    def train(work, kill_at: int | None = None) -> tuple[list, object]:
        seen = []

        def recorded_step(self, batch, batch_idx):
            if len(seen) == kill_at:
                raise KeyboardInterrupt
            seen.append(str(batch))
            return original(self, batch, batch_idx)

        monkeypatch.setattr(RewardModule, "training_step", recorded_step)
        pl.seed_everything(0)
        finetune = build_finetune(cfg.finetune)
        finetune.train(rows, backbone, work, plan(cfg).fit_context(None))
        return seen, finetune.load(work, backbone).score([r["prompt"] + r["chosen"] for r in test])

    uninterrupted, rewards = train(tmp_path / "uninterrupted")
    for kill_at in kills:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            train(tmp_path / "killed", kill_at)
    resumed, resumed_rewards = train(tmp_path / "killed")
    assert len(uninterrupted) == 8 and len(set(uninterrupted[:4])) == 4
    assert uninterrupted[4:] != uninterrupted[:4]  # each epoch has its own order
    assert resumed == uninterrupted[resumed_from:]
    assert resumed_rewards == pytest.approx(rewards, abs=1e-5)
