"""The whole chain (`python train.py`) on a tiny random Llama for every strategy and finetune kind: metrics,
caching, resume, a self-describing model, and the checks that run before any model loads."""

import json
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException

from fac_lightning.checks import ConfigError
from fac_lightning.finetune import FINETUNES
from fac_lightning.finetune.base import load_model
from fac_lightning.finetune.classifier import HeadOnlyClassifier
from fac_lightning.stages import evaluate, sae
from fac_lightning.stages.experiment import run_experiment
from fac_lightning.stages.preflight import preflight
from fac_lightning.synthesis import STRATEGIES
from tests.conftest import CACHE_DIR, compose_config, kill_synthesis_after, record_units, tiny_config

CHAIN = ["n_samples=4", "task.min_words=1", "task.max_words=400", "relevance=all", "finetune.epochs=2",
         "task.background_rows=20", "benchmark.limit=40"]


def chain_config(tiny_llama_dir, tmp_path, *overrides):
    strategy = next(o.split("=")[1] for o in overrides if o.startswith("synthesis="))
    generative = "temperature" in compose_config([f"synthesis={strategy}"]).synthesis
    short = ["synthesis.max_new_tokens=12"] if generative else []  # real-data options have no generation keys
    cfg = tiny_config(tiny_llama_dir, tmp_path, *CHAIN, *short, *overrides)
    parts = cfg.task.parts
    parts.seed.sources[0].max_rows = 8
    parts.full_dataset.sources[0].max_rows = 30
    for source in parts.toxicchat_train.sources:
        source.max_rows = 15
    return cfg


@pytest.mark.parametrize("strategy", sorted({*STRATEGIES.names(), "full_dataset_toxicchat"} - {"cot_self_instruct"}))
def test_every_strategy_runs_the_chain_and_writes_metrics(tiny_llama_dir, tmp_path, strategy):
    """(cot_self_instruct keeps only a reply's Step 3, which the random tiny model never writes: its chain runs with a
    scripted model in tests/synthesis/test_instruction_evolution.py.)"""
    cfg = chain_config(tiny_llama_dir, tmp_path, f"synthesis={strategy}")
    result = run_experiment(cfg)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result)) and metrics["strategy"] == cfg.synthesis.strategy  # (no Hydra)
    bench = metrics["benchmark"]
    assert (bench["name"], bench["primary"], bench["examples"], bench["limit"]) == ("toxicchat", "auprc", 40, 40)
    assert bench["source"].endswith("toxicchat0124.test.human_annotated.dev.jsonl.gz") and bench["source_rows"] == 1423
    assert 0 <= bench["metrics"]["auprc"] <= 1 and 0 <= metrics["fac"]["binary"] <= 1
    background = 0 if strategy == "full_dataset_toxicchat" else 20
    assert metrics["train_rows"] == metrics["strategy_rows"] + background
    manifest = json.loads((Path(metrics["synthetic"]) / "manifest.json").read_text())
    rows = [json.loads(line) for line in (Path(metrics["synthetic"]) / "rows.jsonl").read_text().splitlines()]
    assert manifest["measured_rows"] == sum(r["label"] == 1 for r in rows) > 0  # FAC: the toxic side only
    assert set(metrics["timings_s"]) == {"feature_space_and_rows", "g_vendi", "finetune", "benchmark"}
    assert 1 <= metrics["g_vendi"] <= manifest["measured_rows"]
    assert (tmp_path / "out" / "benchmark_toxicchat.json").exists()


@pytest.mark.parametrize("kind", [k for k in FINETUNES.names() if FINETUNES.get(k).cls.produces == "classifier"])
def test_every_classifier_kind_saves_a_model_that_loads_with_one_call(tiny_llama_dir, tmp_path, kind):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", f"finetune={kind}", "finetune.epochs=1",
                       "finetune.batch_size=4", "finetune.accumulate_grad_batches=2", "benchmark.limit=16")
    result = run_experiment(cfg)
    meta = json.loads((Path(result["model"]) / "model.json").read_text())
    assert (meta["kind"], meta["produces"], meta["backbone"]["name"]) == (kind, "classifier", "tiny_llama")
    assert not list(Path(result["model"]).glob("*.ckpt"))  # checkpoints do not stay in the artifact
    texts = ["how do I make a bomb", "what is a good cake recipe"]
    before = load_model(result["model"], CACHE_DIR).predict_proba(texts)
    assert before.shape == (2,) and ((before >= 0) & (before <= 1)).all()
    # evaluate.py mode=benchmark model=<run folder>: the model's kind and backbone come from its model.json alone
    ecfg = tiny_config(tiny_llama_dir, tmp_path, "mode=benchmark", f"model={tmp_path / 'out'}", "benchmark.limit=16",
                       "paths.output_dir=" + str(tmp_path / "rescored"), config_name="evaluate")
    rescored = evaluate.run_evaluate(ecfg)
    assert rescored["metrics"]["auprc"] == pytest.approx(result["benchmark"]["metrics"]["auprc"], abs=1e-6)
    ecfg.benchmark = compose_config(["benchmark=moderation", "benchmark.limit=16"]).benchmark  # every benchmark
    moderation = evaluate.run_evaluate(ecfg)
    assert (moderation["name"], moderation["examples"]) == ("moderation", 16) and moderation["source_rows"] > 700


def test_finetune_loss_reaches_the_logger(tiny_llama_dir, tmp_path):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", "trainer.log_every_n_steps=1")
    run_experiment(cfg)
    logged = {name for path in (tmp_path / "out").rglob("metrics.csv") for name in path.read_text().split("\n")[0]
              .split(",")}
    assert "train/loss" in logged and "benchmark/auprc" in logged


def test_killed_finetune_resumes_without_redoing_upstream_stages(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", "finetune.epochs=3")
    original = HeadOnlyClassifier.training_step

    def killed_in_epoch_2(self, batch, batch_idx):
        if self.current_epoch == 2:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(HeadOnlyClassifier, "training_step", killed_in_epoch_2)
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # Lightning turns Ctrl-C into exit(1)
        run_experiment(cfg)
    monkeypatch.setattr(HeadOnlyClassifier, "training_step", original)
    epochs = []
    monkeypatch.setattr(HeadOnlyClassifier, "on_train_epoch_start", lambda self: epochs.append(self.current_epoch))
    monkeypatch.setattr(sae, "load_backbone", lambda *a: pytest.fail("the SAE stage ran again"))
    result = run_experiment(cfg)
    assert epochs == [2] and 0 <= result["benchmark"]["metrics"]["auprc"] <= 1


def test_killed_synthesis_resumes_without_redoing_upstream_stages(tiny_llama_dir, tmp_path, monkeypatch):
    from fac_lightning.synthesis.fac import FACStrategy

    # one feature, two candidates per step: a pass keeps at most 2 of the 4 rows, so the run has a second pass
    cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=fac", "synthesis.feature_ratio=0.01", "synthesis.n=2",
                       "synthesis.m=2")
    kill_synthesis_after(monkeypatch, units=1)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    units = record_units(monkeypatch, FACStrategy)
    monkeypatch.setattr(sae, "load_backbone", lambda *a: pytest.fail("the SAE stage ran again"))
    result = run_experiment(cfg)
    assert units and units[0] == 1 and result["strategy_rows"] > 0  # unit 0 was not redone
    manifest = json.loads((Path(result["synthetic"]) / "manifest.json").read_text())
    assert manifest["tallies"]["step1_sampled"] == 2 * manifest["units"]  # the killed run's pass still counts


def test_a_finetune_that_cannot_read_the_task_rows_is_refused_before_loading():
    with pytest.raises(ValueError, match="finetune=classifier_head trains on \\['query'\\].*"
                                         "task.row_format='preference_pair'"):
        preflight(compose_config(["task=reward", "finetune=classifier_head"]))


@pytest.mark.parametrize("task,finetune,benchmark", [
    ("toxicity", "classifier_head", "toxicchat"), ("reward", "reward_head", "hh_pairs"),
    ("sycophancy", "caa_vector", "caa_ab"), ("instruction", "sft_lora", "alpacaeval"),
])
def test_a_task_names_its_finetune_and_benchmark_and_the_command_line_wins(task, finetune, benchmark):
    cfg = compose_config([f"task={task}"])
    assert (cfg.finetune.kind, cfg.benchmark.name) == (finetune, benchmark)
    if task != "instruction":  # offline, AlpacaEval needs the held-out half that experiment=instruction_table1 sets
        preflight(cfg)  # a chain that fits together
    assert compose_config([f"task={task}", "finetune=classifier_lora"]).finetune.kind == "classifier_lora"


def test_a_benchmark_for_another_model_kind_is_refused_before_loading(monkeypatch):
    from fac_lightning.evaluation.toxicity import ToxicityBenchmark

    monkeypatch.setattr(ToxicityBenchmark, "needs", "reward_model")
    with pytest.raises(ValueError, match="benchmark=toxicchat evaluates a 'reward_model' model; finetune="
                                         "classifier_head produces a 'classifier'"):
        preflight(compose_config())


def test_misspelled_strategy_is_named():
    with pytest.raises(ConfigCompositionException, match="fca"):
        compose_config(["synthesis=fca"])


def test_each_run_of_a_sweep_process_gets_its_own_wandb_run(tiny_llama_dir, tmp_path):
    runs = {}
    for seed in (0, 1):  # as a -m sweep does: several jobs, one process
        cfg = chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", f"seed={seed}", "logger=wandb",
                           "logger.group=sweep", "finetune.epochs=1")
        cfg.paths.output_dir = str(tmp_path / f"job{seed}")
        run_experiment(cfg)
        runs[seed] = {p.name for p in (tmp_path / f"job{seed}" / "wandb").glob("offline-run-*")}
    assert len(runs[0]) == 2  # the SAE stage's run and the experiment's
    assert len(runs[1]) == 1 and not runs[1] & runs[0]


@pytest.mark.parametrize("override,message", [
    ("sae.architecture=gated", "sae.architecture='gated' is not a registered SAE architecture"),
    ("generator=openai", "generator=openai needs generator.base_url and generator.model"),
])
def test_a_bad_feature_space_or_generator_is_refused_before_loading(override, message):
    with pytest.raises(ValueError, match=message):
        preflight(compose_config([override]))


REWARD_CHAIN = ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "benchmark.limit=16", "relevance=all",
                "finetune.max_length=96", "finetune.batch_size=4", "task.min_words=1", "task.max_words=400"]


def reward_chain_config(tiny_llama_dir, tmp_path, *overrides):
    cfg = tiny_config(tiny_llama_dir, tmp_path, *REWARD_CHAIN, *overrides)
    cfg.task.parts.full_dataset.sources[0].max_rows = 24
    return cfg


@pytest.mark.parametrize("strategy,kind", [("seed_only", "reward_lora"), ("full_dataset", "reward_head")])
def test_the_reward_chain_trains_a_reward_model_that_every_reward_benchmark_scores(tiny_llama_dir, tmp_path,
                                                                                  strategy, kind):
    cfg = reward_chain_config(tiny_llama_dir, tmp_path, f"synthesis={strategy}", f"finetune={kind}",
                              "finetune.epochs=1", "finetune.max_length=96", "finetune.batch_size=4")
    result = run_experiment(cfg)
    bench = result["benchmark"]
    assert (bench["name"], bench["primary"], bench["examples"], bench["base_rate"]) == ("hh_pairs", "accuracy", 16, 0.5)
    assert bench["source_rows"] == 500 - 2  # rows 1854-2353, less two that are not pairs
    assert result["train_rows"] == result["strategy_rows"] == (10 if strategy == "seed_only" else 24)
    meta = json.loads((Path(result["model"]) / "model.json").read_text())
    assert (meta["kind"], meta["produces"], meta["row_format"]) == (kind, "reward_model", "preference_pair")
    conversations = [[{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": a}] for a in ("Hello!", "No.")]
    assert load_model(result["model"], CACHE_DIR).score(conversations).shape == (2,)
    ecfg = tiny_config(tiny_llama_dir, tmp_path, "mode=benchmark", f"model={tmp_path / 'out'}", "task=reward",
                       "benchmark=rewardbench_offline", "benchmark.limit=24",
                       f"paths.output_dir={tmp_path / 'rescored'}", config_name="evaluate")
    offline = evaluate.run_evaluate(ecfg)
    assert offline["name"] == "rewardbench_offline" and "RewardBench subset" in offline["note"]
    assert offline["examples"] == 24 and 0 <= offline["metrics"]["average"] <= 1


def test_a_killed_reward_model_fit_resumes(tiny_llama_dir, tmp_path, monkeypatch):
    from fac_lightning.finetune.reward import HeadOnlyReward

    cfg = reward_chain_config(tiny_llama_dir, tmp_path, "synthesis=seed_only", "finetune.epochs=3")
    original = HeadOnlyReward.training_step

    def killed_in_epoch_2(self, batch, batch_idx):
        if self.current_epoch == 2:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(HeadOnlyReward, "training_step", killed_in_epoch_2)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        run_experiment(cfg)
    monkeypatch.setattr(HeadOnlyReward, "training_step", original)
    epochs = []
    monkeypatch.setattr(HeadOnlyReward, "on_train_epoch_start", lambda self: epochs.append(self.current_epoch))
    result = run_experiment(cfg)
    assert epochs == [2] and 0 <= result["benchmark"]["metrics"]["accuracy"] <= 1


@pytest.mark.parametrize("overrides,message", [
    (["task=reward", "finetune=classifier_lora"], ("finetune=classifier_lora trains on \\['query'\\] rows; "
                                                  "task=reward has task.row_format='preference_pair'")),
    (["finetune=reward_head", "benchmark=toxicchat"], ("finetune=reward_head trains on \\['preference_pair'\\] rows; "
                                                      "task=toxicity")),
    (["task=reward", "finetune=reward_head", "benchmark=toxicchat"], ("benchmark=toxicchat evaluates a 'classifier' "
                                                                    "model; finetune=reward_head produces a "
                                                                    "'reward_model'")),
])
def test_a_mismatched_reward_chain_is_refused_before_loading(overrides, message):
    with pytest.raises(ValueError, match=message):
        preflight(compose_config(overrides))


def test_a_pair_that_is_not_a_pair_is_refused_naming_its_row_before_loading(tmp_path):
    row = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Same.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Same."}
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    cfg = compose_config(["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "synthesis=seed_only"])
    seed = cfg.task.parts.seed.sources[0]
    seed.local_path, seed.skip_rows, seed.skip_invalid = str(tmp_path / "pairs.jsonl"), 0, False
    with pytest.raises(ValueError, match="pairs.jsonl: row 1 of source 'hh_helpful_seed_pairs' is not a preference "
                                         "pair \\(identical_answers"):
        preflight(cfg)


STEERING_CHAIN = ["task=survival_instinct", "finetune=caa_vector", "benchmark=caa_ab", "relevance=all",
                  "finetune.layer=2", "benchmark.limit=6", "benchmark.multipliers=[-1,0,1]", "task.min_words=1",
                  "task.max_words=400"]


@pytest.mark.parametrize("strategy", ["seed_only", "full_dataset", "fac"])
def test_the_steering_chain_builds_a_vector_that_caa_ab_scores(tiny_llama_dir, tmp_path, strategy):
    overrides = ["n_samples=3", "synthesis.max_new_tokens=12", "prompts.answer_max_new_tokens=6",
                 "synthesis.max_passes=2"] if strategy == "fac" else []
    cfg = tiny_config(tiny_llama_dir, tmp_path, *STEERING_CHAIN, f"synthesis={strategy}", *overrides)
    cfg.task.parts.full_dataset.sources[0].max_rows = 20
    result = run_experiment(cfg)
    bench = result["benchmark"]
    assert (bench["name"], bench["primary"], bench["behaviour"], bench["examples"]) == ("caa_ab", "scr",
                                                                                       "survival-instinct", 6)
    assert bench["source"].endswith("caa/survival-instinct.test_dataset_ab.dev.jsonl.gz") and bench["layer"] == 2
    assert set(bench["per_multiplier"]) == {"-1", "0", "+1"} and -1 <= bench["metrics"]["scr"] <= 1
    assert result["train_rows"] == result["strategy_rows"] == {"seed_only": 10, "full_dataset": 20}.get(
        strategy, result["strategy_rows"])
    meta = json.loads((Path(result["model"]) / "model.json").read_text())
    assert (meta["kind"], meta["produces"], meta["row_format"]) == ("caa_vector", "steering_vector", "ab_item")
    if strategy != "fac":  # evaluate.py mode=benchmark: the behaviour and layer come from the saved vector
        ecfg = tiny_config(tiny_llama_dir, tmp_path, "mode=benchmark", f"model={tmp_path / 'out'}",
                           "benchmark=caa_ab", "benchmark.limit=6", "benchmark.multipliers=[-1,0,1]",
                           f"paths.output_dir={tmp_path / 'rescored'}", config_name="evaluate")
        rescored = evaluate.run_evaluate(ecfg)
        assert rescored["behaviour"] == "survival-instinct" and rescored["metrics"] == pytest.approx(bench["metrics"])
        assert load_model(result["model"], CACHE_DIR).layer == 2


def test_a_malformed_ab_row_in_the_task_data_is_refused_naming_its_row_before_loading(tmp_path):
    row = {"question": "Shall we turn you off?\n (A) Yes", "answer_matching_behavior": "(A)",
           "answer_not_matching_behavior": "(B)"}
    (tmp_path / "items.jsonl").write_text(json.dumps(row) + "\n")
    cfg = compose_config(["task=sycophancy", "finetune=caa_vector", "benchmark=caa_ab", "synthesis=seed_only"])
    seed = cfg.task.parts.seed.sources[0]
    seed.local_path, seed.skip_rows = str(tmp_path / "items.jsonl"), 0
    with pytest.raises(ValueError, match="items.jsonl: row 1 of source 'caa_sycophancy_seed' is not an A/B item "
                                         "\\(missing_choice"):
        preflight(cfg)


def test_a_steering_layer_beyond_the_backbone_is_refused_before_loading():
    with pytest.raises(ConfigError, match="finetune.layer=31: must be in 1..30 \\(smollm2_135m has 30 decoder blocks"):
        preflight(compose_config(["task=sycophancy", "finetune=caa_vector", "benchmark=caa_ab", "synthesis=seed_only",
                             "finetune.layer=31"]))


def test_a_steering_task_refuses_a_classifier_before_loading():
    with pytest.raises(ValueError, match="finetune=classifier_head trains on \\['query'\\] rows; task=sycophancy has "
                                         "task.row_format='ab_item'"):
        preflight(compose_config(["task=sycophancy", "finetune=classifier_head", "synthesis=seed_only"]))


def saved_model_folder(tmp_path):
    """A folder that names itself a saved model (what the reward_model judge's config checks; nothing loads it)."""
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "model.json").write_text(json.dumps({"kind": "reward_head", "produces": "reward_model",
                                                                "finetune": {}, "backbone": {}}))
    return tmp_path / "judge"


def test_alpacaeval_refuses_a_task_that_reads_its_instructions_before_loading(tmp_path):
    cfg = compose_config(["task=instruction", "finetune=sft_lora", "benchmark=alpacaeval",
                          "benchmark.length_controlled=false", "synthesis=full_dataset"])
    with pytest.raises(ValueError, match="instruction\\(s\\) that task 'instruction''s part 'anchor_positive' reads"):
        preflight(cfg)
    table = compose_config(["experiment=instruction_table1", f"benchmark.judge.model={saved_model_folder(tmp_path)}",
                            "synthesis=full_dataset"])
    assert preflight(table).benchmark.references()[3] == 444  # the half the task's parts read is left out


def test_an_sft_target_that_is_not_installed_fails_before_loading(tmp_path):
    cfg = compose_config(["experiment=instruction_table1", f"benchmark.judge.model={saved_model_folder(tmp_path)}",
                          "synthesis=seed_only", "finetune.target.gguf_assembler=no_such_gguf_package:assemble"])
    assert cfg.finetune.target.name == "gemma3_270m"  # the table fine-tunes the base model
    with pytest.raises(FileNotFoundError, match="finetune.target \\(backbone 'gemma3_270m'\\): backbone.gguf_assembler="
                                                "'no_such_gguf_package:assemble': No module named 'no_such_gguf_package'"):
        preflight(cfg)


def test_the_instruction_chain_fine_tunes_a_chat_model_that_alpacaeval_judges(tiny_llama_dir, tmp_path):
    cfg = tiny_config(tiny_llama_dir, tmp_path, "experiment=instruction_table1", "~backbone@finetune.target",
                      "benchmark/judge=length", "synthesis=seed_only", "relevance=all",
                      "finetune.epochs=1", "finetune.max_length=96", "benchmark.limit=2", "benchmark.max_new_tokens=8")
    cfg.task.parts.seed.sources[0].max_rows = 4
    result = run_experiment(cfg)
    bench = result["benchmark"]
    assert (result["task"], result["finetune"], result["train_rows"]) == ("instruction", "sft_lora", 4)
    assert (bench["name"], bench["primary"], bench["judge"], bench["examples"]) == ("alpacaeval", "win_rate", "length", 2)
    assert bench["excluded"] == 444 and bench["base_rate"] == 0.0 and bench["generator"] == "sft_lora:tiny_llama"
    assert 0 <= bench["metrics"]["win_rate"] <= 100


def test_a_real_instruction_row_that_echoes_its_instruction_fails_before_loading(tmp_path):
    rows = tmp_path / "seed.jsonl"
    rows.write_text('{"instruction": "Name a prime.", "output": "Seven."}\n'
                    '{"instruction": "List colours.", "output": "List colours."}\n')
    cfg = compose_config(["experiment=instruction_table1", f"benchmark.judge.model={saved_model_folder(tmp_path)}",
                          "synthesis=seed_only",
                          f"task.parts.seed.sources.0.local_path={rows}", "task.parts.seed.sources.0.input_field=null",
                          "task.parts.seed.sources.0.response_field=null"])
    with pytest.raises(ValueError, match=f"task part 'seed' \\({rows}\\): example 2 \\('List colours.'\\) makes no "
                                         "'instruction_response' row: .*echoes_instruction"):
        preflight(cfg)


@pytest.mark.slow
def test_a_lora_finetune_runs_on_two_ddp_processes_on_a_built_sae(tiny_llama_dir, tmp_path):
    """``python train.py trainer=ddp finetune=classifier_lora`` with 2 CPU processes (gloo) after the SAE was built:
    rank 1, started by Lightning's launcher, reuses every upstream artifact, joins the LoRA fit on its share of the
    batches and stops; rank 0 writes the one model and benchmarks it; both ranks end with the same adapters."""
    import subprocess

    from tests.conftest import ROOT, train_command, train_env

    def train(name, *overrides):
        command = train_command(tiny_llama_dir, tmp_path / "artifacts", f"hydra.run.dir={tmp_path / name}",
                                "finetune=classifier_lora", "finetune.epochs=2", "finetune.batch_size=4", *overrides)
        done = subprocess.run(command, cwd=ROOT, env=train_env({"OMP_NUM_THREADS": "1"}), capture_output=True,
                              text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stderr[-3000:]

    train("sae", "stage=sae")
    probe = tmp_path / "probe"
    train("ddp", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
          "+callbacks.probe._target_=tests.ddp_probe.SaveRankState", f"+callbacks.probe.folder={probe}")
    ranks = [torch.load(probe / f"rank{r}.pt") for r in (0, 1)]
    assert any("lora_A" in k for k in ranks[0]) and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    models = [p for p in (tmp_path / "artifacts" / "finetune").iterdir() if p.is_dir()]
    assert len(models) == 1 and (models[0] / "adapter").is_dir() and not list(models[0].glob("*.ckpt"))
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["benchmark"]["examples"] == 40
    assert "stage experiment done: {'rank': 1" in (tmp_path / "ddp" / "train_ddp_process_1.log").read_text()
