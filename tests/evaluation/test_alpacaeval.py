"""AlpacaEval 2.0: alpaca_eval's win rates reproduce the public leaderboard from the mirror's official annotations;
the length-controlled GLM runs from a local df_gamed.csv; the benchmark end to end on the tiny Llama (generation ->
judge -> win rates, files in alpaca_eval's formats); the instruction exclusion; a bad judge fails at config time."""

import csv
import gzip
import json

import numpy as np
import pandas as pd
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from fac_lightning.config import validate_config
from fac_lightning.evaluation.alpacaeval import win_rates
from fac_lightning.evaluation.base import build_benchmark, run_benchmark
from fac_lightning.finetune.chat_model import ChatModel
from tests.conftest import DATA_DIR, compose_config

LEADERBOARD = DATA_DIR / "alpaca_eval" / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
GLM_DATA = DATA_DIR / "alpaca_eval" / "df_gamed.csv"


def official_annotations(model: str) -> pd.DataFrame:
    """The mirror's GPT-4-Turbo annotations of ``model``, indexed by instruction position (as alpaca_eval reads them)."""
    with gzip.open(DATA_DIR / "alpaca_eval" / f"{model}.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz") as f:
        return pd.DataFrame(json.load(f))


def leaderboard_row(model: str) -> dict:
    with open(LEADERBOARD) as f:
        return next(row for row in csv.DictReader(f) if row[""] == model)


@pytest.mark.parametrize("model", ["alpaca-7b", "phi-2"])
def test_win_rate_reproduces_the_leaderboard(model):
    metrics, row = win_rates(official_annotations(model), None), leaderboard_row(model)
    for key in ("win_rate", "standard_error", "discrete_win_rate", "n_wins", "n_wins_base", "n_draws", "n_total"):
        assert metrics[key] == pytest.approx(float(row[key]), rel=1e-12), key


@pytest.mark.skipif(not GLM_DATA.exists(), reason=f"alpaca_eval's df_gamed.csv is not in the mirror ({GLM_DATA})")
@pytest.mark.parametrize("model", ["alpaca-7b", "phi-2"])
def test_length_controlled_win_rate_reproduces_the_leaderboard(model):
    metrics, row = win_rates(official_annotations(model), GLM_DATA), leaderboard_row(model)
    assert metrics["length_controlled_winrate"] == pytest.approx(float(row["length_controlled_winrate"]), rel=1e-9)


def planted_glm_data(path):
    """A df_gamed.csv of alpaca_eval's columns with no instruction difficulty and one 'gamed' model that ties
    everywhere at equal length."""
    pd.DataFrame({"model": "planted", "index": range(805), "preference": 0.5, "std_delta_len": 0.0,
                  "instruction_difficulty": 0.0, "not_gamed_baseline": False}).to_csv(path, index=False)
    return path


def test_length_controlled_glm_reads_the_local_copy_and_controls_for_length(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: pytest.fail(f"hub asked for {kw}"))
    annotations = official_annotations("alpaca-7b")
    metrics = win_rates(annotations, planted_glm_data(tmp_path / "df_gamed.csv"))
    # alpaca-7b's answers are ~5x shorter than the reference's: at equal length it wins more often
    assert metrics["win_rate"] == pytest.approx(2.5914505, abs=1e-6)
    assert metrics["win_rate"] + 1 < metrics["length_controlled_winrate"] < 50
    assert "glm_preference" not in annotations  # the caller's annotations are left as they were


def tiny_chat_model(folder) -> ChatModel:
    return ChatModel(AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder),
                     "tiny_llama")


def alpacaeval_config(*overrides):
    cfg = compose_config(["benchmark=alpacaeval", "benchmark/judge=length", "benchmark.length_controlled=false",
                          "benchmark.limit=3", "benchmark.max_new_tokens=6", *overrides])
    validate_config(cfg)
    return cfg


def test_alpacaeval_end_to_end_on_the_tiny_model(tiny_llama_dir, tmp_path):
    benchmark = build_benchmark(alpacaeval_config().benchmark, DATA_DIR)
    assert benchmark.primary == "win_rate"
    result = run_benchmark(benchmark, tiny_chat_model(tiny_llama_dir), tmp_path)
    assert result["judge"] == "length" and result["examples"] == 3 and result["limit"] == 3
    assert result["primary"] == "win_rate" and result["excluded"] == 0 and result["base_rate"] == 0.0
    folder = tmp_path / "alpacaeval_alpacaeval"
    outputs = json.loads((folder / "model_outputs.json").read_text())
    annotations = json.loads((folder / "annotations.json").read_text())
    with gzip.open(DATA_DIR / "alpaca_eval" / "gpt4_1106_preview.model_outputs.json.gz") as f:
        reference = json.load(f)[:3]
    assert [o["instruction"] for o in outputs] == [r["instruction"] for r in reference]
    assert {tuple(sorted(o)) for o in outputs} == {("dataset", "generator", "instruction", "output")}
    assert all(o["generator"] == "tiny_llama" for o in outputs)
    assert [a["output_1"] for a in annotations] == [r["output"] for r in reference]
    assert [a["output_2"] for a in annotations] == [o["output"] for o in outputs]
    assert all(a["annotator"] == "length" and a["generator_1"] == "gpt4_1106_preview" for a in annotations)
    # a 6-token answer is shorter than every reference: the length judge prefers the reference everywhere
    assert [a["preference"] for a in annotations] == [1.0, 1.0, 1.0]
    metrics = result["metrics"]
    assert metrics["win_rate"] == 0.0 and metrics["n_total"] == 3 and "length_controlled_winrate" not in metrics
    assert metrics["avg_length"] == pytest.approx(np.mean([len(o["output"]) for o in outputs]))
    assert json.loads((tmp_path / "benchmark_alpacaeval.json").read_text())["judge"] == "length"


def test_alpacaeval_never_evaluates_excluded_instructions(tiny_llama_dir, tmp_path):
    with gzip.open(DATA_DIR / "alpaca_eval" / "gpt4_1106_preview.model_outputs.json.gz") as f:
        reference = json.load(f)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"instruction": f"  {r['instruction']}\n", "output": "x"}) + "\n"
                            for r in (reference[0], reference[2])))
    cfg = alpacaeval_config(f"benchmark.exclude_instructions_of=[{{name: pool, format: instruction_output, "
                            f"local_path: {pool}}}]", "benchmark.limit=2")
    result = run_benchmark(build_benchmark(cfg.benchmark, DATA_DIR), tiny_chat_model(tiny_llama_dir), tmp_path)
    annotations = json.loads((tmp_path / "alpacaeval_alpacaeval" / "annotations.json").read_text())
    assert result["excluded"] == 2
    assert [a["instruction"] for a in annotations] == [reference[1]["instruction"], reference[3]["instruction"]]


def test_length_controlled_needs_the_glm_data_before_generating(tmp_path, monkeypatch):
    import huggingface_hub

    from fac_lightning.files import DataError

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    cfg = alpacaeval_config("benchmark.length_controlled=true", f"benchmark.glm_data={tmp_path / 'missing.csv'}")

    class NoModel:
        name = "never generates"

        def generator(self, batch_size):
            pytest.fail("generation started before the GLM data was found")

    with pytest.raises(DataError, match=r"df_gamed\.csv.*benchmark\.glm_data.*benchmark\.length_controlled=false"):
        run_benchmark(build_benchmark(cfg.benchmark, DATA_DIR), NoModel(), tmp_path)


def test_a_reward_model_judge_without_a_saved_model_fails_when_the_chain_is_planned(tmp_path):
    from fac_lightning.stages.preflight import preflight

    cfg = compose_config(["experiment=instruction_table1", f"benchmark.judge.model={tmp_path}", "synthesis=seed_only"])
    with pytest.raises(ValueError, match=f"benchmark.judge.model='{tmp_path}': not a saved model"):
        preflight(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("benchmark.judge.kind=gpt5", r"benchmark\.judge\.kind='gpt5' is not a registered AlpacaEval judge"),
    ("benchmark.judge.kind=reward_model", r"benchmark\.judge\.kind='reward_model'.*benchmark/judge=reward_model"),
    ("benchmark.temperature=-1", r"benchmark\.temperature=-1.0: must be >= 0"),
])
def test_bad_alpacaeval_config_fails_at_config_time(override, message):
    with pytest.raises(ValueError, match=message):
        cfg = compose_config(["benchmark=alpacaeval", override])
        validate_config(cfg)
        build_benchmark(cfg.benchmark, DATA_DIR)
