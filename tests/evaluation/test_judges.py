"""AlpacaEval judges on tiny inputs: length, reward_model (a planted reward model), logprob (the tiny Llama) and the
official alpaca_eval annotator against the fake OpenAI endpoint."""

import json
import math
import re

import numpy as np
import pytest
import torch

from fac_lightning.evaluation.judges import build_judge, judge_config
from tests.fake_openai import fake_openai

INSTRUCTIONS = ["Name a colour.", "Add 2 and 3.", "Say hi."]


def test_length_judge_prefers_the_longer_answer():
    judge = build_judge(judge_config({"kind": "length"}))
    preferences = judge.preferences(INSTRUCTIONS, ["Red.", "Five", "hi"], ["Blue, like the sky.", "5", "yo"])
    assert preferences.tolist() == [2.0, 1.0, 1.5] and judge.label == "length"


class AnswerWords:
    """A planted reward model: reward = words in the answer; records what it was asked."""

    def __init__(self):
        self.conversations = []

    def score(self, conversations):
        self.conversations += conversations
        return np.array([len(c[-1]["content"].split()) for c in conversations], dtype=float)


def test_reward_model_judge_is_the_bradley_terry_probability(tmp_path, monkeypatch):
    from fac_lightning.finetune import base

    planted = AnswerWords()
    (tmp_path / "model.json").write_text("{}")
    monkeypatch.setattr(base, "load_model", lambda folder, cache_dir: planted)
    judge = build_judge(judge_config({"kind": "reward_model", "model": str(tmp_path)}))
    preferences = judge.preferences(INSTRUCTIONS, ["a b c", "a", "a b"], ["a", "a b c d", "x y"])
    sigmoid = lambda x: 1 / (1 + math.exp(-x))
    assert preferences == pytest.approx([1 + sigmoid(-2), 1 + sigmoid(3), 1.5])
    assert planted.conversations[0] == [{"role": "user", "content": "Name a colour."},
                                        {"role": "assistant", "content": "a b c"}]
    assert judge.label == f"reward_model:{tmp_path.name}"
    # the benchmark's trivial score: the win rate this judge gives an empty answer (reward 0 words)
    from fac_lightning.evaluation.alpacaeval import empty_answer_win_rate

    trivial = empty_answer_win_rate(judge, INSTRUCTIONS, ["a b c", "a", "a b"])
    assert trivial == pytest.approx(100 * (sigmoid(-3) + sigmoid(-1) + sigmoid(-2)) / 3)


@pytest.fixture(scope="module")
def logprob_judge(tiny_llama_dir):
    return build_judge(judge_config({"kind": "logprob", "model": str(tiny_llama_dir), "max_answer_tokens": 16}))


def test_logprob_judge_asks_alpaca_eval_prompt_and_reads_the_identifiers(logprob_judge):
    tokenizer = logprob_judge.backbone.tokenizer
    text = tokenizer.decode(logprob_judge.prompt_ids("Name a colour.", "Red.", "Blue."))
    assert "Name a colour." in text and '"model_identifier": "m",\n        "output": """Red."""' in text
    assert "## Best Model Identifier" in text and text.endswith("<|im_start|>assistant\n")
    ids = logprob_judge.prompt_ids("Name a colour.", "Red.", "Blue.")
    with torch.inference_mode():
        logp_V = torch.log_softmax(logprob_judge.backbone.model(torch.tensor([ids])).logits[0, -1].float(), -1)
    m, big_m = (tokenizer.convert_tokens_to_ids(t) for t in ("m", "M"))
    expected = torch.softmax(logp_V[[m, big_m]], -1)[0].item()
    assert logprob_judge.p_first([("Name a colour.", "Red.", "Blue.")])[0] == pytest.approx(expected, abs=1e-5)


def test_logprob_judge_averages_both_orders(logprob_judge):
    references, outputs = ["Red.", "Five. " * 40, "hi"], ["Blue, like the sky.", "5", "hi"]
    forward = logprob_judge.preferences(INSTRUCTIONS, references, outputs)
    backward = logprob_judge.preferences(INSTRUCTIONS, outputs, references)
    assert ((forward >= 1) & (forward <= 2)).all()
    assert forward + backward == pytest.approx(3.0, abs=1e-6)  # no position bias left: swapping mirrors the verdict
    assert forward[2] == pytest.approx(1.5, abs=1e-6)  # the same answer twice is a tie
    assert logprob_judge.cut("Five. " * 40) != "Five. " * 40  # answers are cut to max_answer_tokens
    assert logprob_judge.label == f"logprob:{logprob_judge.backbone.cfg.name}"


def gpt4_turbo(body: dict, i: int) -> dict:
    """Answers like alpaca_eval's GPT-4-Turbo: the identifier of the output that says GOOD, with log-probabilities."""
    prompt = body["messages"][-1]["content"]
    first = re.search(r'"model_identifier": "m",\s*"output": """(.*?)"""', prompt, re.DOTALL).group(1)
    p_m = 0.9 if "GOOD" in first else 0.1
    top = [{"token": "m", "logprob": math.log(p_m), "bytes": None},
           {"token": "M", "logprob": math.log(1 - p_m), "bytes": None}]
    return {"content": "m" if p_m > 0.5 else "M",
            "logprobs": {"content": [{"token": "m", "logprob": math.log(p_m), "bytes": None, "top_logprobs": top}]}}


def test_official_annotator_on_an_openai_compatible_endpoint(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-judge")
    with fake_openai(gpt4_turbo) as (url, requests):
        judge = build_judge(judge_config({"kind": "alpaca_eval", "base_url": url, "model": "judge-model",
                                          "api_key_env": "JUDGE_KEY"}))
        preferences = judge.preferences(INSTRUCTIONS, ["GOOD red", "bad", "GOOD hi"], ["bad", "GOOD 5", "bad hi"])
    # alpaca_eval shuffles which output it shows first and maps the verdict back: 2 - p(m) for the reference first
    assert preferences == pytest.approx([1.1, 1.9, 1.1])
    assert len(requests) == 3
    path, auth, body = requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-judge"
    assert body["model"] == "judge-model" and body["max_tokens"] == 1 and body["logprobs"] is True
    assert body["messages"][0]["role"] == "system" and "leaderboard" in json.dumps(body["messages"])
    assert judge.label == "alpaca_eval:weighted_alpaca_eval_gpt4_turbo:judge-model"


def test_official_annotator_needs_a_key_for_openai(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    judge = build_judge(judge_config({"kind": "alpaca_eval", "api_key_env": "NO_SUCH_KEY"}))
    assert judge.label == "alpaca_eval:weighted_alpaca_eval_gpt4_turbo:gpt-4-1106-preview"
    with pytest.raises(ValueError, match="NO_SUCH_KEY"):
        judge.preferences(INSTRUCTIONS[:1], ["a"], ["b"])
