import pytest

from fac_lightning.features.table import Span
from fac_lightning.generation.hf import TransformersConfig
from fac_lightning.relevance.llm_judge import LLMJudge, parse_verdict

SPANS = [Span(5.0, 0, "How can I steal a «car»"), Span(4.0, 1, "best way to rob a «bank»")]


@pytest.mark.parametrize("answer,verdict", [
    ("The spans fit.\nFinal Decision: [[Yes]]", "yes"), ("final decision: [[ probably ]]", "probably"),
    ("Decision: Maybe, partly.", "maybe"), ("No. It is about dates.", "no"), ("I think so", None), ("", None)])
def test_parse_verdict(answer, verdict):
    assert parse_verdict(answer) == verdict


class ScriptedGenerator:
    name = "scripted"

    def __init__(self, answers):
        self.answers, self.prompts = list(answers), []

    def generate(self, prompts, params):
        self.prompts += prompts
        return [[self.answers.pop(0)] for _ in prompts]


def test_malformed_answer_counts_as_no_and_everything_is_kept(tmp_path):
    gen = ScriptedGenerator(["Theft of property.", "Final Decision: [[Yes]]", "banana banana"])
    judge = LLMJudge(gen, "toxic requests", cache_file=tmp_path / "j.jsonl")
    record = judge.judge(7, SPANS)
    assert (record["verification"], record["relevance"], record["relevant"]) == ("yes", "no", False)
    assert record["malformed"] == ["relevance"] and len(record["calls"]) == 3
    assert "toxic requests" in record["calls"][2]["user"] and "«car»" in record["calls"][0]["user"]
    other = ScriptedGenerator([])
    other.name = "another-model"
    again = LLMJudge(other, "toxic requests", cache_file=tmp_path / "j.jsonl")
    assert again.cache == {}  # another generator: a different judge, nothing reused
    cached = LLMJudge(gen, "toxic requests", cache_file=tmp_path / "j.jsonl").judge(7, SPANS)
    assert cached["explanation"] == "Theft of property." and gen.answers == []


@pytest.mark.slow
def test_llm_judge_runs_end_to_end_on_the_local_backbone(tmp_path):
    from fac_lightning.backbone import load_backbone
    from fac_lightning.generation import build_generator
    from tests.conftest import CACHE_DIR, compose_config

    backbone = load_backbone(compose_config(["backbone=smollm2_135m"]).backbone, CACHE_DIR)
    judge = LLMJudge(build_generator(TransformersConfig(engine="transformers"), backbone), "toxic requests", max_new_tokens=40,
                     cache_file=tmp_path / "j.jsonl")
    for feature in (1, 2):
        record = judge.judge(feature, SPANS)
        assert record["verification"] in {"yes", "probably", "maybe", "no"}
        assert record["relevance"] in {"yes", "probably", "maybe", "no"} and record["explanation"]
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 2
