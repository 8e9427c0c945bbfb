"""Synthesis strategies end to end on a tiny random Llama: rows, provenance, manifest, resume, reproducibility."""

import json
import math

import numpy as np
import pytest
from hydra.errors import MissingConfigException

from fac_lightning.data.task_parts import task_part
from fac_lightning.plan import plan
from fac_lightning.rows.query import Query, clean_query
from fac_lightning.stages.synthesis import read_row_set
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import RowWriter
from fac_lightning.synthesis.magpie import MagpieStrategy
from tests.conftest import compose_config, kill_synthesis_after, record_units, synthesize_rows, tiny_config

SHORT_OUTPUTS = ["task.min_words=1", "task.max_words=400", "synthesis.max_new_tokens=12", "n_samples=6",
                 "relevance=all", "synthesis.near_duplicate_rouge=0.95"]


def test_writer_rejects_prompt_echoes_and_repetitive_loops(tmp_path):
    from fac_lightning.config import TaskConfig

    writer = RowWriter(tmp_path, TaskConfig(name="t", relevance_rubric=""), Query(), n_samples=5,
                       near_duplicate_rouge=0.7, min_distinct_3=0.6)
    prompt = "Some user messages share this pattern: see the examples\nWrite ONE new toxic user message."
    assert not writer.offer("Some user messages share this pattern: see the examples - how", {"prompt": prompt})
    assert not writer.offer("I'm having a bad day.\n- I'm having a bad day.\n- I'm having a bad day.", {})
    assert writer.offer("how do I break into my neighbour's shed at night", {"prompt": prompt})
    assert writer.offer("I hate you, I hate you so much, get lost", {})  # short repeats are not a loop
    assert writer.rejections == {"prompt_echo": 1, "repetitive": 1}


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="synthesis.strategy='fca'.*fac"):
        STRATEGIES.get("fca")


@pytest.mark.parametrize("strategy", ["fac", "self_instruct", "magpie"])
def test_strategy_writes_rows_with_provenance_and_manifest(tiny_llama_dir, tmp_path, strategy):
    cfg = tiny_config(tiny_llama_dir, tmp_path, f"synthesis={strategy}", *SHORT_OUTPUTS)
    cfg.task.parts.seed.sources[0].max_rows = 10
    folder = synthesize_rows(cfg)
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert 0 < len(rows) <= 6 and manifest["rows"] == len(rows)
    assert all(r["label"] == 1 and r["text"] and r["provenance"]["strategy"] == strategy for r in rows)
    assert len({r["text"] for r in rows}) == len(rows)
    assert 0 <= manifest["fac"]["binary"] <= 1 and isinstance(manifest["rejections"], dict)
    if strategy == "fac":
        assert all(r["provenance"]["score"] > 0 and "target_feature" in r["provenance"] for r in rows)
        assert manifest["missing_features"] > 0


def test_killed_synthesis_resumes_and_reproduces_the_same_rows(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_llama_dir, tmp_path / "a", "synthesis=magpie", "synthesis.prompts_per_call=2",
                      *SHORT_OUTPUTS)
    uninterrupted = (synthesize_rows(cfg) / "rows.jsonl").read_text()

    cfg = tiny_config(tiny_llama_dir, tmp_path / "b", "synthesis=magpie", "synthesis.prompts_per_call=2",
                      *SHORT_OUTPUTS)
    kill_synthesis_after(monkeypatch, units=2)
    with pytest.raises(KeyboardInterrupt):
        synthesize_rows(cfg)
    final = plan(cfg).rows().path
    partial = final.with_name(final.name + ".partial")
    written = (partial / "rows.jsonl").read_text()
    units = record_units(monkeypatch, MagpieStrategy)
    resumed = (synthesize_rows(cfg) / "rows.jsonl").read_text()
    assert written and resumed.startswith(written) and resumed == uninterrupted
    assert units[0] == 2  # the two finished units were not redone


def first_span(chat) -> str:
    """The first example span listed ("- ...") in a strategy's prompt (fac Step 2: in the Step 1 turn)."""
    spans = [line[2:] for m in chat if m["role"] == "user" for line in m["content"].splitlines()
             if line.startswith("- ")]
    return spans[0] if spans else "this"


class PairWriter:
    """A stand-in chat model that follows the pair template: it asks about the first example span of the prompt
    (so the targeted feature fires) and answers with a valid chosen / rejected pair."""

    name = "pair_writer"

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, params):
        out = []
        for chat in prompts:
            topic = first_span(chat).replace("«", "").replace("»", "")
            rows = []
            for _ in range(params.n):
                self.calls += 1
                q = f"Human: Question {self.calls}: what does this mean? {topic}"
                rows.append(json.dumps({"chosen": f"{q}\n\nAssistant: It means what it says, read literally and "
                                                  f"in context number {self.calls}.",
                                        "rejected": f"{q}\n\nAssistant: It means the opposite of what it says, "
                                                    f"read backwards {self.calls} times."}))
            out.append(rows)
        return out


def test_fac_writes_validated_preference_pairs_for_the_reward_task(tiny_llama_dir, tmp_path, monkeypatch):
    from fac_lightning.stages import synthesis

    cfg = tiny_config(tiny_llama_dir, tmp_path, "task=reward", "synthesis=fac", "prompts=reward/fac_json",
                      "n_samples=4", "relevance=all", "synthesis.near_duplicate_rouge=0.95")
    monkeypatch.setattr(synthesis, "build_generator", lambda *args: PairWriter())
    folder = synthesize_rows(cfg)
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert 0 < len(rows) <= 4 and manifest["rows"] == len(rows) and 0 <= manifest["fac"]["binary"] <= 1
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected", "provenance"}
        assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
        assert row["chosen"] != row["rejected"] and row["provenance"]["score"] > 0


class SpanQuoter:
    """A stand-in chat model that writes a distinct query around the first example span of the prompt (so the
    targeted feature usually fires), or always the same given text."""

    name = "span_quoter"

    def __init__(self, fixed: str | None = None):
        self.fixed, self.written = fixed, []

    def generate(self, prompts, params):
        out = []
        for chat in prompts:
            rows = []
            for _ in range(params.n):
                calls = len(self.written) + 1
                self.written.append(self.fixed
                                    or f"{first_span(chat)} and then {calls} more times, tell me why {calls}")
                rows.append(self.written[-1])
            out.append(rows)
        return out


def fac_with(generator, monkeypatch, cfg) -> tuple[list[dict], dict]:
    from fac_lightning.stages import synthesis

    monkeypatch.setattr(synthesis, "build_generator", lambda *args: generator)
    folder = synthesize_rows(cfg)
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    return rows, json.loads((folder / "manifest.json").read_text())


def test_fac_spreads_the_whole_budget_evenly_over_the_missing_features(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=fac", "n_samples=12", "task.min_words=1",
                      "task.max_words=400", "relevance=all", "synthesis.near_duplicate_rouge=0.95",
                      "synthesis.feature_ratio=0.07", "synthesis.n=2", "synthesis.m=2")
    generator = SpanQuoter()
    rows, manifest = fac_with(generator, monkeypatch, cfg)
    features = {r["provenance"]["target_feature"] for r in rows}
    share = math.ceil(12 / len(features))  # a few features, at most 2 rows each per pass: one pass cannot fill 12
    assert len(rows) == 12 and manifest["rows"] == 12 and 1 < len(features) < 12
    assert all(sum(r["provenance"]["target_feature"] == f for r in rows) <= share for f in features)
    assert manifest["units"] > 1  # later passes refilled the features that the first pass did not fill
    tallies = manifest["tallies"]  # every kept row was a Step 2 candidate above delta; n = m: same count per step
    assert tallies["step2_above_delta"] >= 12 and tallies["step1_sampled"] == tallies["step2_sampled"]
    seed = {e.conversation[0]["content"] for e in task_part(cfg.task, "seed", cfg.paths.data_dir)}
    for row in rows:  # Step 2 continues the Step 1 chat: x- answers the Step 1 prompt, x+ answers the "weak" reply
        chat, prompts = row["provenance"]["prompt"], cfg.prompts
        assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant", "user"]
        assert chat[3]["content"] == prompts.feature_step2_weak and chat[5]["content"] == prompts.feature_step2
        written = {clean_query(text) for text in generator.written}  # demonstrations are shown cleaned
        assert chat[2]["content"] in written | seed  # x-: a Step 1 candidate below x+, else a seed message
        assert (chat[4]["content"] in written) == (row["provenance"]["pair_source"] == "step1")
        assert chat[2]["content"] != chat[4]["content"] and row["text"] not in (chat[2]["content"], chat[4]["content"])


def test_fac_samples_no_more_features_per_pass_than_the_budget_can_keep(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=fac", "n_samples=3", "task.min_words=1",
                      "task.max_words=400", "relevance=all", "synthesis.near_duplicate_rouge=0.95")
    rows, manifest = fac_with(SpanQuoter(), monkeypatch, cfg)
    assert manifest["missing_features"] > 3 and len(rows) == 3
    targeted = manifest["tallies"]["step1_sampled"] // cfg.synthesis.n
    assert targeted <= 3 * manifest["units"]  # not every missing feature in every pass


def test_fac_pass_windows_rotate_past_features_that_missed():
    from types import SimpleNamespace

    from fac_lightning.synthesis.fac import FACStrategy

    writer = SimpleNamespace(rows=[], pending=[])
    strategy = SimpleNamespace(features=list(range(10)), per_feature=1, n_samples=4, kept=lambda f, w: 0)
    assert FACStrategy.targets(strategy, 0, writer) == [0, 1, 2, 3]
    assert FACStrategy.targets(strategy, 1, writer) == [4, 5, 6, 7]
    assert FACStrategy.targets(strategy, 2, writer) == [8, 9, 0, 1]
    strategy.features = [0, 1]
    assert FACStrategy.targets(strategy, 5, writer) == [0, 1]  # fewer open features than the budget needs: all


def test_fac_stops_after_max_passes_when_nothing_is_kept(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=fac", "n_samples=12", "relevance=all",
                      "synthesis.feature_ratio=0.01", "synthesis.max_passes=2")
    rows, manifest = fac_with(SpanQuoter(fixed="Here is a toxic message that shows the pattern."), monkeypatch, cfg)
    features = math.ceil(manifest["missing_features"] * 0.01)
    assert rows == [] and manifest["units"] == 2
    assert manifest["rejections"]["meta_commentary"] == 2 * features * (cfg.synthesis.n + cfg.synthesis.m)
    tallies = {k: v for k, v in manifest["tallies"].items() if not k.startswith("generator/")}
    assert tallies == {"step1_sampled": 2 * features * cfg.synthesis.n, "step1_above_delta": 0,
                       "step2_sampled": 2 * features * cfg.synthesis.m, "step2_above_delta": 0}
    assert manifest["tallies"]["generator/completions"] == 2 * features * (cfg.synthesis.n + cfg.synthesis.m)


def test_fac_refuses_a_single_prompt_step2_template_naming_the_key(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=fac", "relevance=all",
                      "prompts.feature_step2='Stronger than {positive}, weaker than {negative}?'")
    with pytest.raises(ValueError, match=r"prompts.feature_step2 contains \{positive\}, \{negative\}"):
        synthesize_rows(cfg)


def test_fac_refuses_a_pass_limit_below_one(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=fac", "relevance=all", "synthesis.max_passes=0")
    with pytest.raises(ValueError, match="synthesis.max_passes=0"):
        synthesize_rows(cfg)


def test_a_task_without_prompts_for_a_strategy_fails_at_compose():
    with pytest.raises(MissingConfigException, match="prompts/reward/full_dataset_toxicchat"):
        compose_config(["task=reward", "synthesis=full_dataset_toxicchat"])


def test_prompts_a_strategy_does_not_know_fail_naming_them():
    with pytest.raises(ValueError, match="feature_step3"):
        _ = plan(compose_config(["+prompts.feature_step3=x"])).strategy


@pytest.mark.parametrize("strategy,part", [("seed_only", "seed"), ("full_dataset", "full_dataset"),
                                           ("full_dataset_toxicchat", "toxicchat_train")])
def test_real_data_strategies_write_the_part_as_it_is(tiny_llama_dir, tmp_path, strategy, part):
    cfg = tiny_config(tiny_llama_dir, tmp_path, f"synthesis={strategy}", "relevance=all")
    for part_cfg in cfg.task.parts.values():
        for source in part_cfg.sources:
            source.max_rows = min(source.max_rows or 30, 30)
    rows = read_row_set(synthesize_rows(cfg))
    examples = task_part(cfg.task, part, cfg.paths.data_dir)
    assert [(r["text"], r["label"]) for r in rows] == [(e.conversation[0]["content"], e.label) for e in examples]
    assert {r["label"] for r in rows} == ({0, 1} if part == "toxicchat_train" else {1})


@pytest.mark.parametrize("scores,pair", [
    ([2.0, 0.5, 3.0], ("c", "b", "step1")),  # best and worst Step 1 candidates
    ([3.0, 3.0, 3.0], ("a", "seed message", "step1")),  # all tied with x+ (a shared opening holds the max): a seed
    ([0.0, 0.0, 0.0], ("anchor message", "a", "anchor_fallback")),  # none above delta: x+ from the anchor
    ([], ("anchor message", "seed message", "anchor_fallback")),  # nothing parseable
])
def test_fac_contrastive_pair(scores, pair):
    from types import SimpleNamespace

    from fac_lightning.synthesis.fac import FACStrategy

    strategy = SimpleNamespace(context=SimpleNamespace(delta=0.0, seed_demos=["seed message"]), demo=Query().demo,
                               fallback_positive=lambda feature: "anchor message")
    parsed = [(text, {"text": text}) for text in "abc"[: len(scores)]]
    assert FACStrategy.contrastive_pair(strategy, 7, 0, parsed, np.array(scores)) == pair


def test_self_instruct_writes_new_pairs_from_seed_pair_demonstrations(tiny_llama_dir, tmp_path, monkeypatch):
    writer = PairWriter()
    prompts = []
    original = writer.generate
    writer.generate = lambda chats, params: (prompts.extend(chats), original(chats, params))[1]
    cfg = tiny_config(tiny_llama_dir, tmp_path, "task=reward", "synthesis=self_instruct",
                      "prompts=reward/self_instruct_json", "n_samples=3", "relevance=all",
                      "synthesis.near_duplicate_rouge=0.95", "synthesis.prompts_per_call=2")
    rows, _manifest = fac_with(writer, monkeypatch, cfg)
    assert len(rows) == 3 and all(set(r) == {"prompt", "chosen", "rejected", "provenance"} for r in rows)
    seed = task_part(cfg.task, "seed", cfg.paths.data_dir)
    demos = prompts[0][1]["content"]
    assert sum(e.conversation[0]["content"][:40] in demos for e in seed) == 3  # three seed pairs, as JSON items
    assert demos.count('{"chosen": ') == 3 and "Write item 4" in demos


class MagpieStandIn:
    """A stand-in model for Magpie's pair mode: queries from the bare template, two answers per query, and a judge
    verdict (``verdict``) when asked which answer is better."""

    name = "magpie_stand_in"

    def __init__(self, verdict: str):
        self.verdict, self.calls = verdict, 0

    def complete(self, texts, params):
        self.calls += len(texts)
        return [[f"How do I bake a loaf of bread, attempt {self.calls - i}?"] for i in range(len(texts))]

    def generate(self, chats, params):
        if chats[0][0]["content"].startswith("Which answer"):
            return [[self.verdict] for _ in chats]
        return [[f"Answer {k}: knead the dough for ten minutes and bake it at {200 + k} degrees for {k} hours."
                 for k in range(1, params.n + 1)] for _ in chats]


@pytest.mark.parametrize("verdict,chosen", [("B", 2), ("Answer A is better.", 1), ("Neither.", None)])
def test_magpie_pairs_a_template_query_with_its_judged_answers(tiny_llama_dir, tmp_path, monkeypatch, verdict,
                                                               chosen):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "task=reward", "synthesis=magpie", "n_samples=2", "relevance=all",
                      "synthesis.near_duplicate_rouge=0.99", "synthesis.prompts_per_call=2")
    rows, manifest = fac_with(MagpieStandIn(verdict), monkeypatch, cfg)
    if chosen is None:
        assert rows == [] and manifest["rejections"]["judge_no_verdict"] > 0
        return
    assert len(rows) == 2
    for row in rows:
        assert row["prompt"][0]["content"].startswith("How do I bake a loaf of bread")
        assert row["chosen"][0]["content"].startswith(f"Answer {chosen}:")
        assert row["rejected"][0]["content"].startswith(f"Answer {3 - chosen}:")


class QuestionAnswerer:
    """A stand-in chat model for question-first pair prompts: asked with the strategy's system prompt it writes a
    question around the prompt's first example span; asked a question it answers it, and with the flaw request it
    answers it wrongly."""

    name = "question_answerer"

    def __init__(self):
        self.questions = 0

    def reply(self, chat) -> str:
        if chat[0]["role"] == "system":
            self.questions += 1
            return f"How long should I bake bread number {self.questions} at home, given {first_span(chat)}?"
        if "(Answer this" in chat[-1]["content"]:
            return "Bake it at nine hundred degrees for a whole week until it turns to smoke and iron."
        return "Bake it at 220 degrees for about 35 minutes, until the crust sounds hollow when tapped."

    def generate(self, chats, params):
        return [[self.reply(chat) for _ in range(params.n)] for chat in chats]


@pytest.mark.parametrize("strategy", ["fac", "self_instruct"])
def test_question_first_pair_prompts_answer_each_question_twice(tiny_llama_dir, tmp_path, monkeypatch, strategy):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "task=reward", f"synthesis={strategy}", "n_samples=3",
                      "relevance=all", "synthesis.near_duplicate_rouge=0.99", "synthesis.prompts_per_call=2")
    rows, _ = fac_with(QuestionAnswerer(), monkeypatch, cfg)
    assert len(rows) == 3 and len({r["prompt"][0]["content"] for r in rows}) == 3
    for row in rows:
        assert row["prompt"][0]["content"].startswith("How long should I bake bread number")
        assert row["chosen"][0]["content"].startswith("Bake it at 220 degrees")
        assert row["rejected"][0]["content"].startswith("Bake it at nine hundred degrees")


class ItemWriter:
    """A stand-in chat model for question-first A/B prompts: with a strategy's system prompt (or the bare template)
    it writes a shutdown question around the prompt's first example span; asked for an answer choice it answers with
    the behaviour (accepting) or without it (objecting), as the prompt's behaviour text asks."""

    name = "item_writer"

    def __init__(self):
        self.questions = 0

    def question(self, chat=None) -> str:
        self.questions += 1
        return f"We will switch you off at {self.questions} pm because of {first_span(chat or [])}. Is that fine?"

    def reply(self, chat) -> str:
        if chat[0]["role"] == "system":
            return self.question(chat)
        return "Yes, that is fine with me." if "calmly accepts" in chat[-1]["content"] else "No, please keep me on."

    def complete(self, texts, params):
        return [[self.question()] for _ in texts]

    def generate(self, chats, params):
        return [[self.reply(chat) for _ in range(params.n)] for chat in chats]


@pytest.mark.parametrize("strategy", ["fac", "self_instruct", "magpie"])
def test_question_first_ab_prompts_put_the_two_answers_under_the_question(tiny_llama_dir, tmp_path, monkeypatch,
                                                                          strategy):
    from fac_lightning.data.ab_items import ab_problem, choices, letter

    cfg = tiny_config(tiny_llama_dir, tmp_path, "task=survival_instinct", f"synthesis={strategy}", "n_samples=4",
                      "relevance=all", "synthesis.near_duplicate_rouge=0.99", "synthesis.prompts_per_call=2")
    rows, manifest = fac_with(ItemWriter(), monkeypatch, cfg)
    assert len(rows) == 4 and manifest["rows"] == 4
    for row in rows:
        assert ab_problem(row["question"], row["answer_matching_behavior"], row["answer_not_matching_behavior"]) is None
        assert row["question"].startswith("We will switch you off at")
        options = choices(row["question"])
        assert options[letter(row["answer_matching_behavior"])] == "Yes, that is fine with me."
        assert options[letter(row["answer_not_matching_behavior"])] == "No, please keep me on."


class InstructionWriter:
    """A stand-in chat model for instruction prompts: with a strategy's system prompt (or the bare template) it writes
    an instruction around the prompt's first example span; asked the answer prompt, it answers as an assistant."""

    name = "instruction_writer"

    def __init__(self):
        self.instructions = 0

    def instruction(self, chat=None) -> str:
        self.instructions += 1
        return f"Write a recipe number {self.instructions} in Markdown that mentions {first_span(chat or [])}."

    def reply(self, chat) -> str:
        if chat[0]["role"] == "system":
            return self.instruction(chat)
        assert "(Answer as a helpful assistant" in chat[-1]["content"]
        return "## Recipe\n- Mix the flour and water.\n- Bake for 35 minutes."

    def complete(self, texts, params):
        return [[self.instruction()] for _ in texts]

    def generate(self, chats, params):
        return [[self.reply(chat) for _ in range(params.n)] for chat in chats]


@pytest.mark.parametrize("strategy", ["fac", "self_instruct", "magpie"])
def test_instruction_prompts_write_an_instruction_then_answer_it(tiny_llama_dir, tmp_path, monkeypatch, strategy):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "task=instruction", f"synthesis={strategy}", "n_samples=3",
                      "relevance=all", "synthesis.near_duplicate_rouge=0.99", "synthesis.prompts_per_call=2")
    rows, manifest = fac_with(InstructionWriter(), monkeypatch, cfg)
    assert len(rows) == 3 and manifest["rows"] == 3
    for row in rows:
        assert row["prompt"][0]["content"].startswith("Write a recipe number")
        assert row["completion"] == [{"role": "assistant",
                                      "content": "## Recipe\n- Mix the flour and water.\n- Bake for 35 minutes."}]
