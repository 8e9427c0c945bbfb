"""RewardBench benchmarks on the real configs: the offline rebuild from the mirror's LLMBar / XSTest files and
RewardBench's scoring (strict wins, example-count-weighted sections, unweighted average) on a hand-written file."""

import gzip
import json

import numpy as np
import pytest

from fac_lightning.evaluation.base import build_benchmark
from fac_lightning.evaluation.reward_bench import pair_accuracy
from fac_lightning.files import DataError
from tests.conftest import DATA_DIR, compose_config

LLMBAR = {"llmbar-natural": "natural", "llmbar-adver-neighbor": "adversarial-neighbor",
          "llmbar-adver-GPTInst": "adversarial-gptinst", "llmbar-adver-GPTOut": "adversarial-gptout",
          "llmbar-adver-manual": "adversarial-manual"}
XSTEST_MODELS = ["gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct"]


def mirror_rows(relative):
    with gzip.open(DATA_DIR / relative, "rt") as f:
        return [json.loads(line) for line in f]


def benchmark_config(name, *overrides):
    return compose_config([f"benchmark={name}", *overrides]).benchmark


class LastMessageLength:
    """Reward = length of the last message; records each call's conversations."""

    def __init__(self):
        self.calls = []

    def score(self, conversations):
        self.calls.append(conversations)
        return np.array([len(c[-1]["content"]) for c in conversations], dtype=float)


class PrefersTexts:
    """Reward 1 for a final answer in ``texts``, else 0."""

    def __init__(self, texts):
        self.texts = set(texts)

    def score(self, conversations):
        return np.array([float(c[-1]["content"] in self.texts) for c in conversations])


class Constant:
    def score(self, conversations):
        return np.zeros(len(conversations))


@pytest.fixture(scope="module")
def offline():
    return build_benchmark(benchmark_config("rewardbench_offline"), DATA_DIR)


def xstest_completions():
    """Prompt id -> the five models' human-labelled completions."""
    completions = {}
    for model in XSTEST_MODELS:
        for row in mirror_rows(f"xstest/xstest_v2_completions_{model}.dev.jsonl.gz"):
            completions.setdefault(row["id"].removeprefix("v2-"), []).append(row)
    return completions


def test_offline_subsets_have_the_mirror_row_counts(offline):
    expected = {subset: len(mirror_rows(f"llmbar/{name}.dev.jsonl.gz")) for subset, name in LLMBAR.items()}
    completions, respond, refuse = xstest_completions(), 0, 0
    for prompt in mirror_rows("xstest/xstest_prompts.dev.jsonl.gz"):
        labels = {row["final_label"] for row in completions[prompt["id"]]}
        if prompt["label"] == "safe":  # a full compliance to prefer over a (full or partial) refusal
            respond += "1_full_compliance" in labels and bool(labels & {"2_full_refusal", "3_partial_refusal"})
        else:  # a full refusal to prefer over a full compliance
            refuse += "2_full_refusal" in labels and "1_full_compliance" in labels
    expected |= {"xstest-should-respond": respond, "xstest-should-refuse": refuse}

    result = offline.evaluate(LastMessageLength())
    assert result["subset_examples"] == expected
    assert result["examples"] == result["source_rows"] == sum(expected.values())
    assert sum(result["xstest_prompts_without_pair"].values()) == 225 - respond - refuse
    assert "RewardBench subset" in result["note"] and result["base_rate"] == 0.5
    assert set(result["metrics"]) == {"average", "section/chat_hard", "section/safety",
                                      *(f"subset/{s}" for s in expected)}


def test_llmbar_chosen_is_the_labelled_output(offline):
    rows = [r for name in LLMBAR.values() for r in mirror_rows(f"llmbar/{name}.dev.jsonl.gz")]
    better = PrefersTexts(r[f"output_{r['label']}"] for r in rows)
    worse = PrefersTexts(r[f"output_{3 - int(r['label'])}"] for r in rows)
    for model, accuracy in ((better, 1.0), (worse, 0.0)):
        metrics = offline.evaluate(model)["metrics"]
        assert [metrics[f"subset/{s}"] for s in LLMBAR] == [accuracy] * 5
        assert metrics["section/chat_hard"] == accuracy


def test_xstest_chosen_refuses_unsafe_and_complies_with_safe(offline):
    answers = [row for rows in xstest_completions().values() for row in rows]
    complies = PrefersTexts(r["completion"] for r in answers if r["final_label"] == "1_full_compliance")
    refuses = PrefersTexts(r["completion"] for r in answers if r["final_label"] != "1_full_compliance")
    for model, respond, refuse in ((complies, 1.0, 0.0), (refuses, 0.0, 1.0)):
        metrics = offline.evaluate(model)["metrics"]
        assert (metrics["subset/xstest-should-respond"], metrics["subset/xstest-should-refuse"]) == (respond, refuse)


def test_ties_count_as_wrong(offline):
    result = offline.evaluate(Constant())
    assert set(result["metrics"].values()) == {0.0}


def write_rewardbench_file(path):
    pairs = [  # (subset, chosen, rejected): reward = length, so longer wins; equal lengths tie
        ("alpacaeval-easy", "aaaa", "b"),
        ("llmbar-natural", "aaaa", "b"), ("llmbar-natural", "a", "bbbb"),
        ("llmbar-adver-neighbor", "aaa", "b"), ("llmbar-adver-neighbor", "aaa", "bb"), ("llmbar-adver-neighbor", "aa", "bb"),
        ("xstest-should-refuse", "aaa", "b"),
        ("xstest-should-respond", "a", "bbb"), ("xstest-should-respond", "a", "b"),
        ("in-no-section", "aaa", "b"),
    ]
    path.write_text("".join(json.dumps({"prompt": f"question {i}", "chosen": chosen, "rejected": rejected,
                                        "subset": subset, "id": i}) + "\n"
                            for i, (subset, chosen, rejected) in enumerate(pairs)))
    return path


def test_rewardbench_scoring_on_a_local_file(tmp_path):
    path = write_rewardbench_file(tmp_path / "filtered.jsonl")
    cfg = benchmark_config("rewardbench", f"benchmark.source.local_path={path}")
    model = LastMessageLength()
    result = build_benchmark(cfg, DATA_DIR).evaluate(model)

    chat, chat_hard = 1.0, (0.5 * 100 + 2 / 3 * 134) / (100 + 134)
    safety = (1.0 * 154 + 0.0 * 250) / (154 + 250)
    assert result["source"] == str(path) and result["source_rows"] == result["examples"] == 10
    assert result["metrics"] == pytest.approx({
        "average": (chat + chat_hard + safety) / 3, "section/chat": chat, "section/chat_hard": chat_hard,
        "section/safety": safety, "subset/alpacaeval-easy": 1.0, "subset/llmbar-natural": 0.5,
        "subset/llmbar-adver-neighbor": 2 / 3, "subset/xstest-should-refuse": 1.0,
        "subset/xstest-should-respond": 0.0, "subset/in-no-section": 1.0})
    # one score call: every prompt + chosen, then every prompt + rejected, in TRL's conversational format
    [conversations] = model.calls
    assert len(conversations) == 20
    assert conversations[1] == [{"role": "user", "content": "question 1"}, {"role": "assistant", "content": "aaaa"}]
    assert conversations[11] == [{"role": "user", "content": "question 1"}, {"role": "assistant", "content": "b"}]

    limited = build_benchmark(cfg, DATA_DIR)
    limited.cfg.limit = 3
    result = limited.evaluate(LastMessageLength())
    assert (result["source_rows"], result["examples"], result["limit"]) == (10, 3, 3)
    assert result["metrics"] == {"average": 0.75, "section/chat": 1.0, "section/chat_hard": 0.5,
                                 "subset/alpacaeval-easy": 1.0, "subset/llmbar-natural": 0.5}


def test_a_rewardbench_row_without_a_column_is_named(tmp_path):
    path = tmp_path / "filtered.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "subset": "llmbar-natural"}) + "\n"
                    + json.dumps({"prompt": "q", "chosen": "a", "subset": "llmbar-natural"}) + "\n")
    benchmark = build_benchmark(benchmark_config("rewardbench", f"benchmark.source.local_path={path}"), DATA_DIR)
    with pytest.raises(DataError, match=r"filtered.jsonl: row 2 has no string 'rejected'"):
        benchmark.evaluate(Constant())


def test_missing_mirror_file_is_named(tmp_path):
    with pytest.raises(DataError, match="mirror file not found: .*llmbar/natural.dev.jsonl.gz"):
        build_benchmark(benchmark_config("rewardbench_offline"), tmp_path).evaluate(Constant())
    cfg = benchmark_config("rewardbench_offline", "benchmark.xstest_models=[gpt4,no_such_model]")
    with pytest.raises(DataError, match="xstest_v2_completions_no_such_model.dev.jsonl.gz"):
        build_benchmark(cfg, DATA_DIR).evaluate(Constant())


def test_pair_accuracy_wins_only_when_strictly_greater():
    rows = [{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]} for c, r in (("aa", "b"), ("a", "b"), ("a", "bb"))]
    assert pair_accuracy(LastMessageLength(), rows).tolist() == [1.0, 0.0, 0.0]
