"""Preflight from the run plan: what the chosen components read, import and call, the devices asked for and the
seed, each failing with one message naming the key, file, package or endpoint, before any model loads; and a delta
that leaves nothing to cover, stopped right after the feature table is scored."""

import copy
import json
import sys
import time

import pytest
import torch

from fac_lightning import backbone
from fac_lightning.checks import ConfigError
from fac_lightning.plan import plan
from fac_lightning.stages.preflight import preflight
from tests.conftest import compose_config, synthesize_rows, tiny_config
from tests.fake_openai import fake_openai


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    monkeypatch.setattr(backbone.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(("override", "key"), [("trainer=gpu", "trainer.accelerator='gpu'"),
                                               ("backbone.device=cuda", "backbone.device='cuda'")])
def test_a_cuda_device_on_a_machine_without_one_is_refused(override, key):
    with pytest.raises(ConfigError, match=f"{key}.*torch sees no CUDA device here"):
        preflight(compose_config([override]))


def test_a_negative_seed_is_refused():
    with pytest.raises(ConfigError, match="seed=-1: must be >= 0"):
        preflight(compose_config(["seed=-1"]))


def test_a_generator_whose_package_is_missing_is_refused_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without vllm
    with pytest.raises(ConfigError, match=r"generator='vllm': imports 'vllm', which is not installed here: pip "
                                          r"install -e '\.\[vllm\]'"):
        preflight(compose_config(["generator=vllm"]), ("sae", "feature_space", "synthesis"))
    preflight(compose_config(["generator=vllm", "synthesis=seed_only"]), ("sae", "feature_space", "synthesis"))


def test_an_endpoint_that_does_not_answer_is_refused_within_the_probe_timeout():
    cfg = compose_config(["generator=openai", "generator.model=m", "generator.base_url=http://127.0.0.1:9/v1"])
    started = time.time()
    with pytest.raises(ConfigError, match=r"generator.base_url='http://127.0.0.1:9/v1': the endpoint does not "
                                          r"answer \(http://127.0.0.1:9/v1/models"):
        preflight(cfg, ("sae", "feature_space", "synthesis"))
    assert time.time() - started < 10
    with fake_openai(lambda body, i: "hi") as (url, requests):  # a server that answers passes
        preflight(compose_config(["generator=openai", "generator.model=m", f"generator.base_url={url}"]),
                  ("sae", "feature_space", "synthesis"))
    assert requests == []  # the probe asks for no completion


def test_a_cached_row_set_needs_no_generator_server(tmp_path):
    from fac_lightning.plan import plan

    cfg = compose_config(["generator=openai", "generator.model=m", "generator.base_url=http://127.0.0.1:9/v1"], tmp_path)
    with pytest.raises(ConfigError, match="generator.base_url"):
        preflight(cfg, ("sae", "feature_space", "synthesis"))
    run = plan(cfg)
    run.rows(run.strategy).path.mkdir(parents=True)  # the row set is built: nothing is generated
    preflight(cfg, ("sae", "feature_space", "synthesis"))


@pytest.mark.parametrize(("overrides", "message"), [
    (["task=sycophancy", "benchmark.path=caa/missing.jsonl.gz"],
     ("benchmark.path='caa/missing.jsonl.gz': file not found: .*caa/missing.jsonl.gz \\(the A/B test items of "
      "behaviour 'sycophancy'\\)")),
    (["task=reward", "finetune=reward_head", "benchmark=rewardbench_offline",
      "benchmark.xstest_prompts=xstest/missing.jsonl.gz"],
     "benchmark.xstest_prompts='xstest/missing.jsonl.gz': file not found"),
    (["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "benchmark.source.local_path=hh/missing.jsonl",
      "benchmark.source.hub_id=null"],
     "benchmark.source.local_path='hh/missing.jsonl': file not found"),
])
def test_a_benchmark_file_that_is_missing_fails_before_any_stage(overrides, message):
    with pytest.raises(ConfigError, match=message):
        preflight(compose_config(overrides))


def test_a_task_part_that_does_not_exist_is_named():
    with pytest.raises(ConfigError, match="synthesis.part='nonexistent': task 'reward' has no such part "
                                          "\\(task.parts: \\['anchor_positive'"):
        preflight(compose_config(["task=reward", "synthesis=full_dataset", "synthesis.part=nonexistent"]))


def test_a_data_file_that_is_not_utf8_or_not_rows_is_named_with_its_line(tmp_path):
    latin1 = tmp_path / "seed.jsonl"
    latin1.write_bytes('{"text": "a caf\xe9 crime", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=f"{latin1}:1: not UTF-8 text"):
        preflight(compose_config([f"task.parts.seed.sources.0.local_path={latin1}"]))
    numbers = tmp_path / "seed.json"
    numbers.write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match=f"{numbers}: item 1: a row must be a JSON object, found int"):
        preflight(compose_config([f"task.parts.seed.sources.0.local_path={numbers}"]))


def test_a_saved_model_whose_model_json_is_not_json_is_named_with_its_line(tmp_path):
    (tmp_path / "model.json").write_text('{"kind": "classifier_head",\n "produces": classifier}')
    cfg = compose_config(["mode=benchmark", f"model={tmp_path}"], config_name="evaluate")
    with pytest.raises(ValueError, match=f"{tmp_path}/model.json:2: not valid JSON"):
        preflight(cfg, ("benchmark",))
    (tmp_path / "model.json").write_text(json.dumps({"kind": "reward_head", "produces": "reward_model", "task": "reward",
                                                    "finetune": {}, "backbone": {}}))
    judged = compose_config(["experiment=instruction_table1", f"benchmark.judge.model={tmp_path}"])
    (tmp_path / "model.json").write_text(json.dumps({"kind": "classifier_head", "produces": "classifier",
                                                    "finetune": {}, "backbone": {}}))
    with pytest.raises(ConfigError, match="benchmark.judge.model=.*is a 'classifier' \\(finetune 'classifier_head'\\), "
                                          "not a 'reward_model'"):
        preflight(judged)


@pytest.mark.slow
def test_a_delta_that_leaves_no_relevant_or_no_missing_feature_stops_before_synthesis(tiny_llama_dir, tmp_path,
                                                                                      monkeypatch):
    from fac_lightning.stages.feature_space import build_feature_space

    monkeypatch.undo()  # the tiny backbone loads
    cfg = tiny_config(tiny_llama_dir, tmp_path, "relevance=all", "features.delta=1e6")
    with pytest.raises(ConfigError, match=r"features.delta=1000000.0: leaves no relevant anchor feature: relevance=all "
                                          r"kept \d+ features and the anchor activates 0 above this delta \(its scores "
                                          r"range over \[[\d.e+-]+, [\d.e+-]+\]\)"):
        build_feature_space(plan(cfg))
    cfg = tiny_config(tiny_llama_dir, tmp_path, "relevance=all", "synthesis=fac", "n_samples=2")
    seed = cfg.task.parts.seed.sources  # a seed far larger than the 60-row anchor covers all it activates
    seed[0].max_rows, seed[0].skip_rows = 400, 100
    seed.append(copy.deepcopy(cfg.task.parts.anchor_negative.sources[0]))
    seed[1].max_rows, seed[1].skip_rows = 400, 100
    with pytest.raises(ConfigError, match=r"features.delta=0.0: leaves no missing feature: the seed part activates all"
                                          r" \d+ relevant anchor features"):
        synthesize_rows(cfg)
