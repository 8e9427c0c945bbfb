"""``run_benchmark`` checks what a benchmark's ``evaluate`` returns before anything reads it."""

import pytest

from fac_lightning.evaluation.base import Benchmark, BenchmarkConfig, run_benchmark


class Returns(Benchmark):
    name, needs, primary = "returns", "classifier", "auprc"

    def __init__(self, result):
        super().__init__(BenchmarkConfig(kind="returns", name="planted"), ".")
        self.result = result

    def evaluate(self, model):
        return self.result


def test_a_complete_result_is_written_with_the_benchmark_names(tmp_path):
    result = run_benchmark(Returns({"examples": 3, "metrics": {"auprc": 0.5}}), None, tmp_path)
    assert result["name"] == "planted" and result["primary"] == "auprc"
    assert (tmp_path / "benchmark_planted.json").exists()


@pytest.mark.parametrize("evaluated, named", [
    ({"metrics": {"auprc": 0.5}}, "'examples'"), ({"examples": "3", "metrics": {"auprc": 0.5}}, "'examples'"),
    ({"examples": 3, "metrics": {"f1": 0.5}}, "primary metric 'auprc'"),
    ({"examples": 3, "metrics": {"auprc": "high"}}, "primary metric 'auprc'"), ([0.5], "not a dict"),
])
def test_a_result_without_its_examples_or_primary_metric_is_named(tmp_path, evaluated, named):
    with pytest.raises(TypeError, match=f"benchmark 'planted' .*{named}"):
        run_benchmark(Returns(evaluated), None, tmp_path)
    assert not (tmp_path / "benchmark_planted.json").exists()
