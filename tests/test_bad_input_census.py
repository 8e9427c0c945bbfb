"""The bad-input census's generated cases (``benchmarks/bad_inputs.py``), run in-process: compose and preflight
only, no model loads. Every registered option's declared requirements, each broken once, must fail in preflight with
a message naming the key, file or package."""

import importlib.util
import sys

import pytest

from fac_lightning import backbone
from fac_lightning.stages.preflight import preflight
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "benchmarks" / "bad_inputs.py")
census = importlib.util.module_from_spec(spec)
spec.loader.exec_module(census)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return census.generated_cases(tmp_path_factory.mktemp("census"))


def test_every_registered_option_is_planned_and_gives_cases(generated, tmp_path):
    cases, unplanned = generated
    assert not unplanned
    assert len(cases) >= 100
    planned = {option for option, _, _ in census.planned_runs(tmp_path)}
    for group in ("task", "synthesis", "generator", "finetune", "benchmark", "benchmark/judge"):
        options = {f"{group}={option}" for option in census.options(group)}
        assert options <= planned, options - planned
    kinds = {case.origin.split(": ")[1] for case in cases}
    assert {"Source missing file", "Source file not UTF-8", "DataFile missing file", "DataFile file not UTF-8",
            "SavedModel missing model", "SavedModel model.json not JSON", "Package no vllm", "Package no lm_eval",
            "Package no alpaca_eval", "Package no peft", "Endpoint endpoint silent"} <= kinds


def test_every_generated_bad_input_fails_in_preflight_naming_what_is_wrong(generated, tmp_path, monkeypatch):
    monkeypatch.setattr(backbone.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    wrong = []
    for case in generated[0]:
        cfg = census.compose(case.entry, case.overrides, tmp_path)
        with monkeypatch.context() as hidden:
            for module in case.hide:
                hidden.setitem(sys.modules, module, None)
            try:
                preflight(cfg, census.entry_uses(case.entry, cfg))
                wrong.append(f"{case.origin}: passed preflight")
            except Exception as e:  # noqa: BLE001 - any error; its message is what is checked
                if case.expect not in str(e):
                    wrong.append(f"{case.origin}: {type(e).__name__}: {e} (expected it to name {case.expect!r})")
    assert not wrong, "\n".join(wrong)
