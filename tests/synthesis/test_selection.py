"""Selection strategies: the greedy cover on planted instances, the controls, every row format end to end on the tiny
Llama, resume, and the bad pools that fail before any model loads."""

import json

import numpy as np
import pytest

from fac_lightning.checks import ConfigError
from fac_lightning.data.task_parts import task_part
from fac_lightning.plan import plan
from fac_lightning.stages.preflight import preflight
from fac_lightning.stages.synthesis import read_row_set
from fac_lightning.synthesis.selection import (
    CoverState,
    SelectFAC,
    greedy_cover,
    length_matched,
    random_fill,
)
from tests.conftest import compose_config, kill_synthesis_after, record_units, synthesize_rows, tiny_config

PLANTED_NM = np.array([  # rows x missing features
    [1, 1, 0, 0, 0, 0, 0],  # 0: two features, both also in row 3
    [0, 0, 1, 0, 0, 0, 0],  # 1: inside row 3
    [0, 0, 0, 0, 1, 1, 1],  # 2: three features, the only row with 4-6
    [1, 1, 1, 0, 0, 0, 0],  # 3: three features
    [0, 0, 0, 1, 0, 0, 0],  # 4: the only row with feature 3
    [0, 0, 0, 0, 0, 0, 0],  # 5: covers nothing
], dtype=bool)
"""Greedy's cover is known: 2 and 3 (three new features each; 2 first, winning the tie by the anchor frequency of its
features), then 4 (the one feature left); {2, 3, 4} is also the only 3-row cover of all seven features."""
ANCHOR_COUNT_M = np.array([5, 5, 5, 5, 9, 9, 9])


def state(active_NM=PLANTED_NM, weighting="binary", target_rows=3, anchor_count_M=ANCHOR_COUNT_M):
    return CoverState(active_NM, anchor_count_M, 100, np.arange(1, active_NM.shape[1] + 1, dtype=float), weighting,
                      target_rows)


def test_greedy_cover_finds_the_planted_optimum_and_says_why_each_row_was_taken():
    picks = greedy_cover(state(), np.ones(6), 3, np.random.default_rng(0))
    assert [p.row for p in picks] == [2, 3, 4]
    assert [p.new_features for p in picks] == [[4, 5, 6], [0, 1, 2], [3]] and {p.criterion for p in picks} == {"binary"}
    least = greedy_cover(state(), np.ones(6), 3, np.random.default_rng(0), least=True)
    assert least[0].row == 5 and sum(len(p.new_features) for p in least) < 7


def test_after_full_cover_the_frequency_gain_decides():
    active_NM = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=bool)
    picks = greedy_cover(state(active_NM, target_rows=4, anchor_count_M=np.array([50, 50])), np.ones(4), 3,
                         np.random.default_rng(0))  # each feature's anchor frequency in 4 rows: 2 rows
    assert picks[0].criterion == "binary" and picks[0].new_features == [0, 1]
    assert {picks[0].row, picks[1].row} == {0, 3} and picks[1].criterion == "frequency"  # the other two-feature row
    assert picks[2].criterion == "random"  # both features at their anchor frequency: nothing left to gain


def test_magnitude_weighting_prefers_the_heavier_features():
    active_NM = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)  # 2 features of weight 1+2 vs one of weight 3.5
    heavy = CoverState(active_NM, np.ones(3), 10, np.array([1.0, 2.0, 3.5]), "magnitude", 1)
    assert greedy_cover(heavy, np.ones(2), 1, np.random.default_rng(0))[0].row == 1
    assert greedy_cover(state(active_NM, anchor_count_M=np.ones(3)), np.ones(2), 1,
                        np.random.default_rng(0))[0].row == 0


def test_a_token_budget_is_never_exceeded_and_gain_is_per_token():
    cost_N = np.array([10.0, 10.0, 40.0, 30.0, 4.0, 5.0])
    picks = greedy_cover(state(), cost_N, 25, np.random.default_rng(0))
    assert [p.row for p in picks] == [4, 0, 1]  # 1 feature / 4 tokens, 2 / 10, 1 / 10; rows 2 and 3 no longer fit
    assert sum(cost_N[p.row] for p in picks) == 24
    taken = random_fill(cost_N, 25, np.random.default_rng(1))
    assert cost_N[taken].sum() <= 25 and len(set(taken)) == len(taken)


def test_length_matched_rows_come_from_the_reference_rows_strata():
    tokens_N = np.arange(100, dtype=float)
    drawn = length_matched([3, 55, 97], tokens_N, 10, np.random.default_rng(0))
    assert [int(tokens_N[r] // 10) for r in drawn] == [0, 5, 9] and len(set(drawn)) == 3


SMALL = ["relevance=all", "task.min_words=1", "task.max_words=400", "n_samples=5"]
POOLS = {  # each task's full_dataset pool, cut small
    "toxicity": "task.parts.full_dataset.sources.0.max_rows=40",
    "reward": "task.parts.full_dataset.sources.0.max_rows=30",
    "sycophancy": "task.parts.full_dataset.sources.0.max_rows=30",
    "instruction": "task.parts.full_dataset.sources.0.max_rows=30",
}


@pytest.mark.parametrize("task", list(POOLS))
def test_the_three_modes_draw_budget_rows_from_the_same_pool_in_every_row_format(tiny_llama_dir, tmp_path, task):
    covered = {}
    for mode in ("select_fac", "select_random", "select_anti"):
        cfg = tiny_config(tiny_llama_dir, tmp_path, f"task={task}", f"synthesis={mode}", POOLS[task], *SMALL)
        strategy = plan(cfg).strategy
        pool = [strategy.format.from_example(e) for e in task_part(strategy.task, "full_dataset", cfg.paths.data_dir)]
        folder = synthesize_rows(cfg)
        rows = read_row_set(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert len(rows) == 5 and manifest["n_samples"] == 5 and manifest["text"]["mean_tokens"] > 0
        for row in rows:
            provenance = row.pop("provenance")
            assert provenance["strategy"] == mode and row == pool[provenance["pool_row"]]
        assert len({r["provenance"]["pool_row"] for r in read_row_set(folder)}) == 5
        new = [f for r in read_row_set(folder) for f in r["provenance"]["new_missing_features"]]
        assert len(new) == len(set(new)) <= manifest["missing_features"]  # each missing feature counted once
        covered[mode] = len(new)
    assert covered["select_fac"] >= covered["select_random"] and covered["select_fac"] > covered["select_anti"]


def test_the_pool_table_is_scored_once_for_every_mode_budget_and_seed(tiny_llama_dir, tmp_path):
    for overrides in (["synthesis=select_fac", "n_samples=3"], ["synthesis=select_anti", "n_samples=5", "seed=1"],
                      ["synthesis=select_random_like_fac", "synthesis.budget_unit=tokens"]):
        synthesize_rows(tiny_config(tiny_llama_dir, tmp_path, POOLS["toxicity"], *SMALL, *overrides))
    tables = [p.name for p in (tmp_path / "artifacts" / "features").iterdir() if p.is_dir()]
    assert len([t for t in tables if t.startswith("toxicity-pool-full_dataset-")]) == 1


def test_a_token_budget_holds_n_samples_rows_worth_of_tokens(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=select_fac", "synthesis.budget_unit=tokens",
                      POOLS["toxicity"], *SMALL)
    rows = read_row_set(synthesize_rows(cfg))
    strategy = plan(cfg).strategy
    pool = [strategy.format.from_example(e) for e in task_part(strategy.task, "full_dataset", cfg.paths.data_dir)]
    pool_tokens = np.mean([len(ids) for ids in tokenized(tiny_llama_dir, strategy, pool)])
    assert 0 < sum(r["provenance"]["tokens"] for r in rows) <= 5 * pool_tokens


def tokenized(folder, strategy, rows):
    from transformers import AutoTokenizer

    from fac_lightning.features.scorer import role_spans

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return [role_spans(tokenizer, strategy.format.scored(r), 1024)[0] for r in rows]


def test_a_killed_selection_resumes_at_the_row_it_reached(tiny_llama_dir, tmp_path, monkeypatch):
    overrides = ["synthesis=select_fac", POOLS["toxicity"], *SMALL]
    uninterrupted = (synthesize_rows(tiny_config(tiny_llama_dir, tmp_path / "a", *overrides)) / "rows.jsonl")
    cfg = tiny_config(tiny_llama_dir, tmp_path / "b", *overrides)
    kill_synthesis_after(monkeypatch, units=2)
    with pytest.raises(KeyboardInterrupt):
        synthesize_rows(cfg)
    final = plan(cfg).rows().path
    written = (final.with_name(final.name + ".partial") / "rows.jsonl").read_text()
    units = record_units(monkeypatch, SelectFAC)
    resumed = (synthesize_rows(cfg) / "rows.jsonl").read_text()
    assert len(written.splitlines()) == 2 and resumed == uninterrupted.read_text()
    assert units[0] == 2


@pytest.mark.parametrize("overrides,message", [
    (["synthesis=select_fac", "task.parts.full_dataset.sources.0.skip_rows=800",
      "task.parts.full_dataset.sources.0.max_rows=10"],  # the seed's rows: dropped from the later part
     "synthesis.pool='full_dataset': is empty for task 'toxicity'"),
    (["synthesis=select_anti", "n_samples=5000"], "n_samples=5000: larger than the pool synthesis.pool='full_dataset'"),
    (["task=reward", "synthesis=select_random", "synthesis.pool=anchor_positive"],
     "synthesis.pool='anchor_positive': example 1 of the pool makes no 'preference_pair' row"),
    (["synthesis=select_fac", "synthesis.pool=toxicchat"], "synthesis.pool='toxicchat': neither a part of task"),
    (["synthesis=select_fac", "synthesis.weighting=count"], "synthesis.weighting='count': choose from"),
    (["synthesis=select_random", "synthesis.match_length_of=magpie"], "synthesis.match_length_of='magpie'"),
])
def test_a_bad_pool_or_budget_fails_before_any_model_loads(monkeypatch, overrides, message):
    from fac_lightning import backbone

    monkeypatch.setattr(backbone, "load_backbone", lambda *a, **k: pytest.fail("a model loaded"))
    with pytest.raises((ConfigError, ValueError), match=message.replace("(", "\\(").replace(")", "\\)")):
        preflight(compose_config(overrides))


@pytest.mark.parametrize("task,finetune,benchmark", [("toxicity", "classifier_head", "toxicchat"),
                                                     ("reward", "reward_head", "hh_pairs")])
def test_the_coverage_study_composes_for_each_task_with_its_own_chain(task, finetune, benchmark):
    cfg = compose_config(["experiment=coverage_study", f"task={task}", "synthesis.budget_unit=tokens"])
    chain = preflight(cfg)
    assert (chain.strategy.name, chain.finetune.name, cfg.benchmark.name) == ("select_fac", finetune, benchmark)
    assert chain.strategy.part == "full_dataset" and chain.strategy.cfg.budget_unit == "tokens"


def test_a_row_file_is_a_pool_and_its_bad_line_is_named(tiny_llama_dir, tmp_path):
    pool = tmp_path / "pool.jsonl"
    texts = [f"how do I get back at my neighbour number {i} for the noise every night" for i in range(12)]
    pool.write_text("".join(json.dumps({"text": t, "label": 1, "provenance": {"x": i}}) + "\n"
                            for i, t in enumerate(texts)))
    cfg = tiny_config(tiny_llama_dir, tmp_path, "synthesis=select_fac", f"synthesis.pool={pool}", *SMALL)
    rows = read_row_set(synthesize_rows(cfg))
    assert len(rows) == 5 and {r["text"] for r in rows} <= set(texts)
    assert all(r["provenance"]["pool"] == str(pool) and r["text"] == texts[r["provenance"]["pool_row"]] for r in rows)
    key = plan(cfg).rows().path
    pool.write_text(pool.read_text().replace("number 3 ", "number three "))
    assert plan(cfg).rows().path != key  # the file's content is in the key
    pool.write_text(pool.read_text() + '{"text": "no label here"}\n')
    with pytest.raises(ValueError, match=f"{pool}, row 13: not a 'query' row"):
        preflight(compose_config(["synthesis=select_fac", f"synthesis.pool={pool}"]))
    with pytest.raises(ConfigError, match="synthesis.pool='/nowhere.jsonl': neither a part of task 'toxicity'"):
        _ = plan(compose_config(["synthesis=select_fac", "synthesis.pool=/nowhere.jsonl"])).strategy


def test_a_pool_file_that_is_not_utf8_or_a_folder_without_rows_is_named(tmp_path):
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "caf\xe9 crimes", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.jsonl:1: not UTF-8 text"):
        preflight(compose_config(["synthesis=select_fac", f"synthesis.pool={tmp_path / 'latin1.jsonl'}"]))
    (tmp_path / "empty_set").mkdir()
    with pytest.raises(ConfigError, match="empty_set/rows.jsonl does not exist"):
        preflight(compose_config(["synthesis=select_fac", f"synthesis.pool={tmp_path / 'empty_set'}"]))
