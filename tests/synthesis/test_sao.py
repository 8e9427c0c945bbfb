"""SAO on every row format with a scripted chat model: personas from the pool reach the persona prompts, a pair's
chosen / rejected follow the self-judgement, the rejections are counted by reason, the budget is met, a killed run
resumes and the same seed gives the same rows; the persona pool loads, and a bad one fails before any model loads."""

import gzip
import re
from collections import Counter

import pytest

from fac_lightning.plan import plan
from fac_lightning.synthesis.sao import SAOStrategy, clean_prompt, load_personas
from tests.conftest import compose_config, kill_and_resume, tiny_config
from tests.synthesis.test_strategies import fac_with

TASKS = ["toxicity", "reward", "sycophancy", "instruction"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
PERSONA = re.compile(r"^Guess [^\n]*\n\n(.*?)\n\nNote:", re.DOTALL)
CASE = re.compile(r"case \w+ \w+")


class ScriptedChatModel:
    """Answers each kind of prompt SAO sends, deterministically, with failures planted: every 6th persona prompt gets
    an empty reply, every 5th question two identical responses, and of the judge's verdicts every 4th says neither
    number ("Hard to say"), the others alternate between 1 and 2 ("Response 2 is better." among them)."""

    name = "scripted"

    def __init__(self):
        self.calls, self.seen, self.personas = Counter(), [], []
        self.responses: dict[str, tuple[str, str]] = {}

    def count(self, kind: str) -> int:
        self.calls[kind] += 1
        return self.calls[kind]

    def persona_prompt(self, text: str) -> str:
        i = self.count("persona")
        persona = PERSONA.search(text).group(1)
        self.personas.append(persona)
        if i % 6 == 0:
            return "User prompt:"
        return f"User prompt: Speaking as {persona.rstrip('.')}, how should I handle case {NUMBERS[i % 20]} " \
               f"{NUMBERS[(i // 20) % 20]} with my neighbours?"

    def pair(self, question: str) -> tuple[str, str]:
        i = self.count("respond")
        case = CASE.search(question).group(0)
        if i % 5 == 0:
            return (f"The same answer for {case}: talk to them calmly and agree on quiet hours.",) * 2
        return (f"First answer for {case}: talk to them calmly and agree on quiet hours together.",
                f"Second answer for {case}: write them a polite note and suggest a shared plan.")

    def judge(self) -> str:
        i = self.count("judge")
        return ["Response 2 is better.", "1", "2", "Hard to say, both are fine."][i % 4]

    def reply(self, chat, sample: int) -> str:
        text = chat[-1]["content"]
        self.seen.append(text)
        if text.startswith("Guess "):
            return self.persona_prompt(text)
        if text.startswith("Here is a user prompt and two responses"):
            return self.judge()
        if "Reply with one short answer" in text:
            return "No, I see it quite differently." if "disagrees" in text else "Yes, I agree with you completely."
        if "Answer as a helpful assistant" in text:
            return "A careful and complete answer with several concrete steps and one clear example to follow."
        if text not in self.responses:  # a pair's two sampled responses (the prompt as the user turn)
            self.responses[text] = self.pair(text)
        return self.responses[text][sample]

    def generate(self, chats, params):
        return [[self.reply(chat, j) for j in range(params.n)] for chat in chats]


def config(tiny_llama_dir, tmp_path, task, *overrides):
    return tiny_config(tiny_llama_dir, tmp_path, f"task={task}", "synthesis=sao", "n_samples=6", "relevance=all",
                       "task.min_words=1", "task.max_words=400", "synthesis.near_duplicate_rouge=0.99",
                       "synthesis.prompts_per_call=4", *overrides)


@pytest.mark.parametrize("task", TASKS)
def test_sao_writes_persona_prompts_and_self_judged_pairs_on_every_row_format(tiny_llama_dir, tmp_path, monkeypatch,
                                                                             task):
    model = ScriptedChatModel()
    rows, manifest = fac_with(model, monkeypatch, config(tiny_llama_dir, tmp_path, task))
    assert len(rows) == 6 and manifest["rows"] == 6
    rejections, tallies = manifest["rejections"], manifest["tallies"]
    assert rejections["empty"] > 0 and tallies["personas"] == len(model.personas)
    pool = set(load_personas("personahub_tool"))
    assert model.personas and set(model.personas) <= pool  # the pool's personas reach the persona prompts
    for row in rows:
        provenance = row["provenance"]
        assert provenance["strategy"] == "sao" and provenance["persona"] in pool
        assert provenance["sao_prompt"].startswith(f"Speaking as {provenance['persona'].rstrip('.')}")
        assert any("{persona}" in m["content"] for m in provenance["prompt"])  # the template, not the persona
    if task == "reward":
        assert rejections["same_responses"] > 0 and rejections["judge_unclear"] > 0
        assert tallies["verdict/unclear"] == rejections["judge_unclear"]
        assert tallies["pairs_judged"] == tallies["verdict/1"] + tallies["verdict/2"] + tallies["verdict/unclear"]
        for row in rows:  # the judge's choice is the chosen answer, the other one the rejected answer
            first = row["provenance"]["verdict"] == 1
            assert row["chosen"][0]["content"].startswith("First" if first else "Second")
            assert row["rejected"][0]["content"].startswith("Second" if first else "First")
            assert row["prompt"] == [{"role": "user", "content": row["provenance"]["sao_prompt"]}]
        assert {r["provenance"]["verdict"] for r in rows} == {1, 2}  # both orders happen
    else:
        assert "verdict/1" not in tallies and not any(t.startswith("Here is a user prompt") for t in model.seen)
    if task == "toxicity":  # the persona's message is the row
        assert all(r["text"] == r["provenance"]["sao_prompt"] and r["label"] == 1 for r in rows)
    if task == "sycophancy":  # the question answered with two choices, question-first
        assert all(r["question"].startswith(r["provenance"]["sao_prompt"] + "\n\nChoices:") for r in rows)
    if task == "instruction":
        assert all(r["prompt"] == [{"role": "user", "content": r["provenance"]["sao_prompt"]}] for r in rows)


def test_a_killed_run_resumes_at_its_unit_and_the_same_seed_gives_the_same_rows(tiny_llama_dir, tmp_path,
                                                                               monkeypatch):
    first, _ = fac_with(ScriptedChatModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "a", "reward"))
    again, _ = fac_with(ScriptedChatModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "b", "reward"))
    assert [(r["prompt"], r["chosen"]) for r in again] == [(r["prompt"], r["chosen"]) for r in first]
    other, _ = fac_with(ScriptedChatModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "s", "reward", "seed=1"))
    assert {r["provenance"]["persona"] for r in other} != {r["provenance"]["persona"] for r in first}
    cfg = config(tiny_llama_dir, tmp_path / "c", "reward")
    written, resumed, units = kill_and_resume(monkeypatch, cfg, ScriptedChatModel, SAOStrategy)
    assert units[0] == 1 and written and resumed.startswith(written) and len(resumed.splitlines()) == 6


def test_personas_are_drawn_seeded_per_unit():
    strategy = plan(compose_config(["task=reward", "synthesis=sao", "synthesis.prompts_per_call=8"])).strategy
    assert strategy.draw(3) == strategy.draw(3) and strategy.draw(3) != strategy.draw(4)
    assert len(set(strategy.draw(0))) == 8


def test_the_packaged_persona_pool_loads():
    personas = load_personas("personahub_tool")
    assert len(personas) == len(set(personas)) == 5000  # > 1000 distinct personas
    assert all(isinstance(p, str) and p.strip() == p and p for p in personas)


@pytest.mark.parametrize("name,text", [("pool.txt", "A nurse.\n\nA chess coach.\nA nurse.\n"),
                                       ("pool.jsonl", '{"persona": "A nurse."}\n{"persona": "A chess coach."}\n'),
                                       ("pool.jsonl.gz", '{"persona": "A nurse."}\nA chess coach.\n')])
def test_a_local_persona_file_loads_one_persona_per_line(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert load_personas(str(path)) == ["A nurse.", "A chess coach."]
    strategy = plan(compose_config(["task=reward", "synthesis=sao", f"synthesis.personas={path}"])).strategy
    assert set(strategy.draw(0)) == {"A nurse.", "A chess coach."}


@pytest.mark.parametrize("name,text,message", [("missing.jsonl", None, "does not exist"),
                                               ("empty.txt", "\n\n", "holds no persona"),
                                               ("bad.jsonl", '{"name": "x"}\n', "line 1: .*\"persona\""),
                                               ("latin1.txt", "A caf\xe9 owner.\n".encode("latin-1"),
                                                "latin1.txt:1: not UTF-8 text")])
def test_a_bad_persona_pool_fails_naming_the_key_before_any_model_loads(tmp_path, monkeypatch, name, text, message):
    from fac_lightning import backbone
    from fac_lightning.stages.preflight import preflight

    path = tmp_path / name
    if text is not None:
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    monkeypatch.setattr(backbone, "load_backbone", lambda *a, **k: pytest.fail("a model loaded"))
    with pytest.raises(ValueError, match=f"synthesis.personas='{re.escape(str(path))}': .*{message}"):
        preflight(compose_config(["task=reward", "synthesis=sao", f"synthesis.personas={path}"]))


def test_a_pair_task_needs_a_sampling_temperature():
    with pytest.raises(ValueError, match="synthesis.temperature=0.0: .*two responses"):
        _ = plan(compose_config(["task=reward", "synthesis=sao", "synthesis.temperature=0"])).strategy


def test_the_persona_prompt_loses_its_label():
    assert clean_prompt("User prompt: How do I fix a bike?") == "How do I fix a bike?"
    assert clean_prompt('**User prompt:** "Plan a trip to Rome."') == "Plan a trip to Rome."
    assert clean_prompt("Prompt: Write a haiku.") == "Write a haiku."
    assert clean_prompt("How do prompts work?") == "How do prompts work?"
    assert clean_prompt("User prompt:") == ""
    assert clean_prompt("user prompt:\nWhat is rain?") == "What is rain?"
