"""What ``evaluate.py`` does, by ``mode``: measure a data set in a task's feature space (``dataset``), write feature
cards (``features``), score a saved model on a benchmark again (``benchmark``), or build a leaderboard over runs
(``leaderboard``). Each mode writes its result into the run folder (``logs/evaluate/...``)."""

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.backbone import load_backbone
from fac_lightning.config import DataConfig, Embedder, Mode
from fac_lightning.data.conversations import infer_source, load_conversations
from fac_lightning.evaluation.base import run_benchmark
from fac_lightning.features.cards import cards_markdown
from fac_lightning.files import read_json
from fac_lightning.finetune.base import load_model, model_folder
from fac_lightning.finetune.chat_model import ChatModel
from fac_lightning.leaderboard import write_leaderboard
from fac_lightning.metrics.diversity import text_metrics
from fac_lightning.plan import RunPlan
from fac_lightning.report import write_report
from fac_lightning.stages.feature_space import FeatureSpace, build_feature_space
from fac_lightning.stages.preflight import preflight

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def dataset_conversations(run: RunPlan):
    dataset = run.evaluation.dataset
    if dataset is None:
        raise ValueError("mode=dataset needs dataset=<file.jsonl or the name of a conf/data config>")
    if Path(dataset).is_file():
        return Path(dataset).name, load_conversations(infer_source(dataset), run.data_dir)
    named = CONF_DIR / "data" / f"{dataset}.yaml"
    if not named.exists():
        raise FileNotFoundError(f"dataset={dataset!r} is neither a file nor a config in {named.parent}")
    data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), OmegaConf.load(named)))
    return data.name, [c for s in data.sources for c in load_conversations(s, run.data_dir)]


def embeddings(embedder: Embedder, space: FeatureSpace, conversations, texts) -> np.ndarray | None:
    if embedder == Embedder.minilm:
        from fac_lightning.metrics.embeddings import minilm_embeddings

        return minilm_embeddings(texts)
    if embedder == Embedder.backbone:
        from fac_lightning.metrics.embeddings import backbone_embeddings

        return backbone_embeddings(space.backbone, conversations)
    return None


def evaluate_dataset(run: RunPlan, space: FeatureSpace | None = None) -> dict:
    """FAC and text metrics of ``dataset=``; the data set is read (and a bad file named) before any model loads."""
    name, conversations = dataset_conversations(run)
    space = space or build_feature_space(run)
    table = space.table(name, conversations)
    task, method = run.task.name, run.relevance.method
    texts = ["\n".join(m["content"] for m in c) for c in conversations]
    result = {
        "dataset": name, "samples": len(conversations), "task": task, "delta": space.delta,
        "relevance": method, "sae": str(space.sae_dir),
        "relevant_anchor_features": int(space.relevant_anchor().sum()), "fac": space.coverage(table),
        "missing_features": len(space.missing(table)),
        "text": text_metrics(texts, embeddings(run.evaluation.embedder, space, conversations, texts)),
    }
    write_json_atomic(Path(run.paths.output_dir) / "dataset_metrics.json", result)
    view = Table(title=f"{name} vs {task} anchor (delta={space.delta}, relevance={method})")
    view.add_column("metric")
    view.add_column("value", justify="right")
    rows = {**{f"FAC ({w})": v for w, v in result["fac"].items()}, "missing features": result["missing_features"],
            "relevant anchor features": result["relevant_anchor_features"], **result["text"]}
    for key, value in rows.items():
        view.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(view)
    return result


def write_feature_cards(run: RunPlan, space: FeatureSpace | None = None) -> Path:
    space = space or build_feature_space(run)
    anchor, delta = space.anchor, space.delta
    candidates = np.flatnonzero(space.relevant_anchor())
    if not len(candidates):  # nothing relevant: show the most frequent anchor features instead
        candidates = np.flatnonzero(anchor.active(delta))
    rank = np.array([-space.records.get(int(f), {}).get("rate_diff", 0.0) for f in candidates])
    counts = anchor.active_counts(delta, np.flatnonzero(space.labels == 1))[candidates]
    order = np.lexsort((-counts, rank))
    chosen = [int(f) for f in candidates[order][: run.evaluation.cards]]
    path = Path(run.paths.output_dir) / "feature_cards.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cards_markdown(chosen, anchor, space.labels, space.records, space.relevant, delta,
                                   f"{run.task.name}: {len(chosen)} feature cards ({run.relevance.method})"))
    log.info("wrote %d feature cards to %s", len(chosen), path)
    return path


BASE_MODEL = "base"
"""``model=base``: the un-finetuned backbone as a chat model (``finetune.target`` if the finetune names one, else
``backbone``), the row an SFT must beat."""


def base_chat_model(run: RunPlan) -> ChatModel:
    target = getattr(run.finetune.cfg, "target", None) or run.backbone
    return ChatModel.from_backbone(load_backbone(target, run.paths.cache_dir))


def benchmark_model(run: RunPlan) -> dict:
    """Score the saved model ``model=`` on ``benchmark=``; the model's kind and backbone come from its model.json
    (``model=base``: the un-finetuned backbone, for benchmarks of chat models)."""
    model, benchmark, out = run.evaluation.model, run.benchmark, run.paths.output_dir
    if model is None:
        raise ValueError("mode=benchmark needs model=<saved model folder, its adapter folder, a train.py run folder, "
                         "or base (the un-finetuned backbone)>")
    if model == BASE_MODEL:
        if benchmark.needs != "chat_model":
            raise ValueError(f"model=base is the un-finetuned backbone, a 'chat_model'; benchmark="
                             f"{benchmark.cfg.name} evaluates a {benchmark.needs!r} model")
        result = {"model": BASE_MODEL, **run_benchmark(benchmark, base_chat_model(run), out)}
        Console().print(result)
        return result
    produces = read_json(model_folder(model) / "model.json")["produces"]
    if benchmark.needs != produces:
        raise ValueError(f"benchmark={benchmark.cfg.name} evaluates a {benchmark.needs!r} model; model={model} "
                         f"is a {produces!r}")
    result = {"model": str(model_folder(model)), **run_benchmark(benchmark, load_model(model, run.paths.cache_dir),
                                                                 out)}
    Console().print(result)
    return result


def build_leaderboard(run: RunPlan) -> dict:
    runs = run.evaluation.runs
    if runs is None:
        raise ValueError("mode=leaderboard needs runs=<folder with runs' metrics.json, or wandb:<entity>/<project>/"
                         "<group>>")
    result = write_leaderboard(runs, run.paths.output_dir)
    print(result["markdown"])
    return result


def build_report(run: RunPlan) -> Path:
    runs = run.evaluation.runs
    if runs is None:
        raise ValueError("mode=report needs runs=<sweep folder with runs' metrics.json, or wandb:<entity>/<project>/"
                         "<group>>")
    folder = Path(runs)
    out = write_report(runs, folder if folder.is_dir() else run.paths.output_dir)
    print(f"report: {out.resolve()} ({out.stat().st_size // 1024} KiB; open it in a browser: file://{out.resolve()})")
    return out


MODE_USES = {Mode.dataset: ("sae", "feature_space"), Mode.features: ("sae", "feature_space"),
             Mode.benchmark: ("benchmark",), Mode.leaderboard: (), Mode.report: ()}
"""What each mode runs (``plan.USES``), checked by ``preflight`` before any model loads."""


MODES = {Mode.dataset: evaluate_dataset, Mode.features: write_feature_cards, Mode.benchmark: benchmark_model,
         Mode.leaderboard: build_leaderboard, Mode.report: build_report}


def run_evaluate(cfg: DictConfig):
    run = preflight(cfg, MODE_USES[cfg.mode])
    return MODES[run.evaluation.mode](run)
