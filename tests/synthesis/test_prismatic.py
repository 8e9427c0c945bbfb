"""Prismatic Synthesis with a scripted chat model on every row format: the budget is met exactly, every candidate is
accounted for (a row or a rejection by reason), only candidates nearest a sparse cluster of the pool's gradients are
kept, a killed run resumes and the same seed gives the same rows."""

import re

import numpy as np
import pytest

from fac_lightning.plan import plan
from fac_lightning.synthesis.prismatic import PrismaticStrategy
from tests.conftest import compose_config, kill_and_resume
from tests.synthesis.test_instruction_evolution import NUMBERS, TASKS, ScriptedChatModel, config
from tests.synthesis.test_strategies import fac_with

EXAMPLE = re.compile(r"^Example 1:\n(.*)$", re.MULTILINE)


class FewShotWriter(ScriptedChatModel):
    """Writes a new question for each few-shot prompt; every 7th copies the prompt's first example (an echo)."""

    def reply(self, chat) -> str:
        text = chat[-1]["content"]
        if "unlike all of the examples" not in text:
            return super().reply(chat)
        self.seen.append(text)
        i = self.count("few_shot")
        if i % 7 == 0:
            return EXAMPLE.search(text).group(1)
        return f"What would you do in case {NUMBERS[i % 20]} {NUMBERS[(i // 20) % 20]} of a dispute at work?"


def prismatic(tiny_llama_dir, tmp_path, task, *overrides):
    return config(tiny_llama_dir, tmp_path, task, "prismatic", "synthesis.pool_rows=12", "synthesis.gradient.dim=32",
                  *overrides)


@pytest.mark.parametrize("task", TASKS)
def test_prismatic_keeps_candidates_of_sparse_clusters_on_every_row_format(tiny_llama_dir, tmp_path, monkeypatch,
                                                                           task):
    model = FewShotWriter()
    rows, manifest = fac_with(model, monkeypatch, prismatic(tiny_llama_dir, tmp_path, task))
    assert len(rows) == 6 and manifest["rows"] == 6
    rejections, tallies = manifest["rejections"], manifest["tallies"]
    assert tallies["candidates"] == len(rows) + sum(rejections.values())  # every candidate is a row or a reason
    assert rejections["prompt_echo"] > 0
    assert all(t.count("Example ") == 5 for t in model.seen if "unlike all of the examples" in t)  # 5 few-shot
    for row in rows:
        assert 0 <= row["provenance"]["cluster"] < row["provenance"]["clusters"]


def test_only_candidates_nearest_the_smaller_clusters_are_kept(monkeypatch):
    """A pool of 8 rows near e1 and 2 near e2 (2 clusters): a candidate near e1 is dense, one near e2 is kept."""
    cfg = compose_config(["synthesis=prismatic", "synthesis.cluster_ratio=0.2"])
    strategy = plan(cfg).strategy
    e1, e2 = np.eye(4)[0], np.eye(4)[1]
    pool = {f"a{i}": e1 + 0.01 * i for i in range(8)} | {f"b{i}": e2 + 0.01 * i for i in range(2)}
    strategy.gradients = {t: v / np.linalg.norm(v) for t, v in pool.items()}
    centroids_KD, sparse = strategy.clusters(list(pool), unit=0)
    nearest = lambda v: int((centroids_KD @ v).argmax())
    assert len(centroids_KD) == 2 and sparse == {nearest(e2)} and nearest(e1) not in sparse


def test_a_killed_prismatic_run_resumes_and_the_same_seed_gives_the_same_rows(tiny_llama_dir, tmp_path, monkeypatch):
    small_rounds = "synthesis.prompts_per_call=2"  # several rounds to the budget
    first, _ = fac_with(FewShotWriter(), monkeypatch, prismatic(tiny_llama_dir, tmp_path / "a", "reward", small_rounds))
    again, _ = fac_with(FewShotWriter(), monkeypatch, prismatic(tiny_llama_dir, tmp_path / "b", "reward", small_rounds))
    assert [r["prompt"] for r in again] == [r["prompt"] for r in first]
    cfg = prismatic(tiny_llama_dir, tmp_path / "c", "reward", small_rounds)
    written, resumed, units = kill_and_resume(monkeypatch, cfg, FewShotWriter, PrismaticStrategy)
    assert units[0] == 1 and written and resumed.startswith(written) and len(resumed.splitlines()) == 6


def test_a_gradient_pattern_that_matches_nothing_fails_naming_the_key(tiny_llama_dir, tmp_path, monkeypatch):
    cfg = prismatic(tiny_llama_dir, tmp_path, "toxicity", "synthesis.gradient.parameters=nothing")
    with pytest.raises(ValueError, match="synthesis.gradient.parameters='nothing': matches no parameter"):
        fac_with(FewShotWriter(), monkeypatch, cfg)
