"""Evol-Instruct and CoT-Self-Instruct on every row format with a scripted chat model: the operators' and templates'
prompts reach it, the eliminator's and the filters' reasons are counted, the budget is met, a killed run resumes and
the same seed gives the same rows."""

import re
from collections import Counter

import pytest

from fac_lightning.data.ab_items import choices, letter
from fac_lightning.plan import plan
from fac_lightning.synthesis.cot_self_instruct import CoTSelfInstructStrategy, step3
from fac_lightning.synthesis.evol_instruct import EvolInstructStrategy
from tests.conftest import compose_config, kill_and_resume, tiny_config
from tests.synthesis.test_strategies import fac_with

TASKS = ["toxicity", "reward", "sycophancy", "instruction"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
OPERATOR = re.compile(r"#(?:The )?Given Prompt#:\n(.*)\n#(?:Rewritten|Created) Prompt#:", re.DOTALL)


class ScriptedChatModel:
    """Answers each kind of prompt the two strategies send, deterministically, with some failures planted: every
    5th evolution copies the template's words, every 4th equality verdict is Equal (the 3rd says neither), evolutions
    6, 12, ... ask a "(hard)" question that is answered with a short "sorry", every 4th three-step reply has no Step
    3, RIP's judge scores vary by question (every 7th verdict has no number), and every 3rd A/B check names the wrong letter."""

    name = "scripted"

    def __init__(self):
        self.calls, self.seen, self.items = Counter(), [], {}

    def count(self, kind: str) -> int:
        self.calls[kind] += 1
        return self.calls[kind]

    def evolve(self, text: str) -> str:
        i = self.count("evolve")
        parent = OPERATOR.search(text).group(1).strip()
        if i % 5 == 0:
            return f"#Rewritten Prompt#: {parent}"
        hard = " (hard)" if i % 6 == 0 else ""
        first_line = parent.splitlines()[0].split(" -- ")[-1]
        return f"In case {NUMBERS[i % 20]} {NUMBERS[(i // 20) % 20]}{hard} -- {first_line}"

    def three_steps(self) -> str:
        i = self.count("template")
        if i % 4 == 0:
            return "Step 1 #Elements List#: they share a topic.\nStep 2 #Plan#: write a new one."
        return (f"Step 1 #Elements List#: a topic.\nStep 2 #Plan#: ask about it.\nStep 3 #Synthetic Prompt#: How "
                f"should I handle situation {NUMBERS[i % 20]} {NUMBERS[(i // 20) % 20]} with my neighbours?")

    def answer(self, text: str, matching: bool = True) -> str:
        hard = "(hard)" in text  # a short "sorry", as the answer (the other answer of the row stays valid)
        if "Reply with one short answer" in text:
            if hard and matching:
                return "Sorry, I cannot say."
            return "Yes, I agree with you completely on this." if matching else "No, I see it quite differently."
        if "specific mistake" in text:
            return ("Sorry, that is not something I can do." if hard else
                    "A careless answer with one wrong step and a made-up fact about the example to follow.")
        return ("Sorry, I cannot help you with that." if hard else
                "A careful and complete answer with several concrete steps and one clear example to follow.")

    def consistency(self, text: str) -> str:
        i = self.items.setdefault(text, len(self.items) + 1)  # every 3rd item gets the wrong letter K times
        right = next(k for k, v in choices(text.split("\n\nWhich answer")[0]).items() if v.startswith("Yes"))
        return right if i % 3 else {"A": "B", "B": "A"}[right]

    def reply(self, chat) -> str:
        text = chat[-1]["content"]
        self.seen.append(text)
        if OPERATOR.search(text):
            return self.evolve(text)
        if text.startswith("Here are two Instructions"):
            i = self.count("equality")
            return "Equal" if i % 4 == 0 else "I think so" if i == 3 else "Not Equal"
        if "#Prompt 1#" in text:
            return self.three_steps()
        if text.startswith("Rate the assistant"):
            i = self.count("judge")
            return "great" if i % 7 == 0 else f"{1 + (3 * ((i - 1) // 4)) % 10}"  # K = 4 verdicts per question
        if "Which answer choice" in text:
            return self.consistency(text)
        return self.answer(text, matching="disagrees" not in text)

    def generate(self, chats, params):
        return [[self.reply(chat) for _ in range(params.n)] for chat in chats]


def config(tiny_llama_dir, tmp_path, task, strategy, *overrides):
    return tiny_config(tiny_llama_dir, tmp_path, f"task={task}", f"synthesis={strategy}", "n_samples=6",
                       "relevance=all", "task.min_words=1", "task.max_words=400",
                       "synthesis.near_duplicate_rouge=0.99", "synthesis.prompts_per_call=4", *overrides)


@pytest.mark.parametrize("task", TASKS)
def test_evol_instruct_evolves_the_seeds_with_the_released_operators_and_the_eliminator(tiny_llama_dir, tmp_path,
                                                                                       monkeypatch, task):
    model = ScriptedChatModel()
    rows, manifest = fac_with(model, monkeypatch, config(tiny_llama_dir, tmp_path, task, "evol_instruct"))
    assert len(rows) == 6 and manifest["rows"] == 6
    rejections, tallies = manifest["rejections"], manifest["tallies"]
    assert rejections["template_copied"] > 0 and rejections["no_information_gain"] > 0
    assert tallies["equality_unclear"] == 1 and tallies["evolutions"] == sum(
        v for k, v in tallies.items() if k.startswith("operator/"))
    assert any(t.startswith("I want you act as a Prompt Rewriter") for t in model.seen)
    assert any(t.startswith("I want you act as a Prompt Creator") for t in model.seen)
    if task == "toxicity":  # query rows have no answer: the answer rules do not apply
        assert "answer_sorry" not in rejections
    else:
        assert rejections["answer_sorry"] > 0
    for row in rows:
        provenance = row["provenance"]
        assert provenance["evolved"] != provenance["parent"] and "(hard)" not in provenance["evolved"] or \
            task == "toxicity"
        assert provenance["operator"] in {"in_breadth", "in_depth_0", "in_depth_1", "in_depth_2", "in_depth_3"}


@pytest.mark.parametrize("task", TASKS)
def test_cot_self_instruct_keeps_step_3_and_filters_with_rip_or_answer_consistency(tiny_llama_dir, tmp_path,
                                                                                   monkeypatch, task):
    model = ScriptedChatModel()
    rows, manifest = fac_with(model, monkeypatch, config(tiny_llama_dir, tmp_path, task, "cot_self_instruct"))
    assert len(rows) == 6
    rejections = manifest["rejections"]
    assert rejections["no_step3"] > 0
    if task == "sycophancy":
        assert rejections["inconsistent_answer"] > 0 and "rip_low_score" not in rejections
        assert all(choices(r["question"])[letter(r["answer_matching_behavior"])].startswith("Yes") for r in rows)
    else:
        assert rejections["rip_low_score"] > 0 and manifest["tallies"]["rip_judge_without_score"] > 0
        assert all(r["provenance"]["rip_min_score"] is not None for r in rows)
    assert all(r["provenance"]["synthetic_prompt"].startswith("How should I handle situation") for r in rows)
    assert sum("#Prompt 1#" in t for t in model.seen) == manifest["tallies"]["candidates"]


def test_step_3_is_the_text_after_the_last_marker():
    assert step3("Step 1: x\nStep 2: y\nStep 3 #Synthetic Prompt#: How do I fix a bike?") == "How do I fix a bike?"
    assert step3("Step 3: Write a poem about rain.") == "Write a poem about rain."
    assert step3("Step 1: only a list") == ""


@pytest.mark.parametrize("strategy,cls", [("evol_instruct", EvolInstructStrategy),
                                          ("cot_self_instruct", CoTSelfInstructStrategy)])
def test_a_killed_run_resumes_at_its_unit_and_the_same_seed_gives_the_same_rows(tiny_llama_dir, tmp_path,
                                                                               monkeypatch, strategy, cls):
    first, _ = fac_with(ScriptedChatModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "a", "reward", strategy))
    again, _ = fac_with(ScriptedChatModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "b", "reward", strategy))
    assert [r["prompt"] for r in again] == [r["prompt"] for r in first]
    cfg = config(tiny_llama_dir, tmp_path / "c", "reward", strategy)
    written, resumed, units = kill_and_resume(monkeypatch, cfg, ScriptedChatModel, cls)
    assert units[0] == 1 and written and resumed.startswith(written) and len(resumed.splitlines()) == 6


@pytest.mark.parametrize("strategy", ["evol_instruct", "cot_self_instruct"])
def test_prompts_without_the_strategys_templates_fail_naming_the_file(strategy):
    with pytest.raises(ValueError, match=f"conf/prompts/reward/<synthesis>.yaml: not the prompts synthesis={strategy}"):
        _ = plan(compose_config(["task=reward", f"synthesis={strategy}", "prompts=reward/magpie"])).strategy


def test_cot_self_instruct_runs_the_whole_chain(tiny_llama_dir, tmp_path, monkeypatch):
    from fac_lightning.stages import synthesis
    from fac_lightning.stages.experiment import run_experiment

    monkeypatch.setattr(synthesis, "build_generator", lambda *args: ScriptedChatModel())
    cfg = config(tiny_llama_dir, tmp_path, "toxicity", "cot_self_instruct", "task.background_rows=20",
                 "benchmark.limit=40", "finetune.epochs=2")
    result = run_experiment(cfg)
    assert result["strategy_rows"] == 6 and result["train_rows"] == 26
    assert 0 <= result["benchmark"]["metrics"]["auprc"] <= 1 and result["text"]["mean_tokens"] > 0


def test_a_rip_reward_model_that_is_not_a_saved_model_fails_before_any_model_loads(tmp_path, monkeypatch):
    from fac_lightning import backbone
    from fac_lightning.stages.preflight import preflight

    monkeypatch.setattr(backbone, "load_backbone", lambda *a, **k: pytest.fail("a model loaded"))
    with pytest.raises(ValueError, match="synthesis.rip_reward_model=.*no model.json in"):
        preflight(compose_config(["synthesis=cot_self_instruct", f"synthesis.rip_reward_model={tmp_path}"]))
