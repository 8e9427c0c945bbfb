"""Entry point: score a data set in feature space, write feature cards, benchmark a classifier, or build a
leaderboard.

    python evaluate.py mode=dataset dataset=<file.jsonl | conf/data name> task=toxicity
    python evaluate.py mode=features task=toxicity relevance.method=llm_judge
    python evaluate.py mode=benchmark benchmark=toxicchat model=<run folder | finetune artifact | adapter folder>
    python evaluate.py mode=leaderboard runs=<folder with runs' metrics.json>
"""

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fac_lightning.artifacts import write_json_atomic
from fac_lightning.backbone import load_backbone
from fac_lightning.benchmarks.toxicity import load_benchmark, toxicity_metrics
from fac_lightning.config import DataConfig, register_configs
from fac_lightning.data.conversations import infer_source, load_conversations
from fac_lightning.features.cards import cards_markdown
from fac_lightning.features.fac import WEIGHTINGS, fac, missing_features, relevant_anchor_features
from fac_lightning.leaderboard import write_leaderboard
from fac_lightning.metrics.diversity import text_metrics
from fac_lightning.stages.experiment import score_classifier
from fac_lightning.stages.feature_space import FeatureSpace, build_feature_space

log = logging.getLogger(__name__)
register_configs()
ROOT = Path(__file__).parent


def dataset_conversations(cfg: DictConfig):
    if cfg.dataset is None:
        raise ValueError("mode=dataset needs dataset=<file.jsonl or the name of a conf/data config>")
    if Path(cfg.dataset).is_file():
        return Path(cfg.dataset).name, load_conversations(infer_source(cfg.dataset), cfg.paths.data_dir)
    named = ROOT / "conf" / "data" / f"{cfg.dataset}.yaml"
    if not named.exists():
        raise FileNotFoundError(f"dataset={cfg.dataset!r} is neither a file nor a config in {named.parent}")
    data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), OmegaConf.load(named)))
    return data.name, [c for s in data.sources for c in load_conversations(s, cfg.paths.data_dir)]


def embeddings(cfg: DictConfig, space: FeatureSpace, conversations, texts) -> np.ndarray | None:
    if cfg.embedder == "none":
        return None
    if cfg.embedder == "minilm":
        from fac_lightning.metrics.embeddings import minilm_embeddings

        return minilm_embeddings(texts)
    if cfg.embedder == "backbone":
        from fac_lightning.metrics.embeddings import backbone_embeddings

        return backbone_embeddings(space.backbone, conversations)
    raise ValueError(f"embedder={cfg.embedder!r}: choose from minilm, backbone, none")


def evaluate_dataset(cfg: DictConfig, space: FeatureSpace) -> dict:
    name, conversations = dataset_conversations(cfg)
    table = space.table(name, conversations, cfg)
    texts = ["\n".join(m["content"] for m in c) for c in conversations]
    delta = space.delta
    result = {
        "dataset": name, "samples": len(conversations), "task": cfg.task.name, "delta": delta,
        "relevance": cfg.relevance.method, "sae": str(space.sae_dir),
        "relevant_anchor_features": int(relevant_anchor_features(space.anchor, delta, space.relevant).sum()),
        "fac": {w: fac(table, space.anchor, delta, space.relevant, w) for w in WEIGHTINGS},
        "missing_features": len(missing_features(space.anchor, table, delta, space.relevant)),
        "text": text_metrics(texts, embeddings(cfg, space, conversations, texts)),
    }
    write_json_atomic(Path(cfg.paths.output_dir) / "dataset_metrics.json", result)
    view = Table(title=f"{name} vs {cfg.task.name} anchor (delta={delta}, relevance={cfg.relevance.method})")
    view.add_column("metric")
    view.add_column("value", justify="right")
    rows = {**{f"FAC ({w})": v for w, v in result["fac"].items()},
            "missing features": result["missing_features"],
            "relevant anchor features": result["relevant_anchor_features"], **result["text"]}
    for key, value in rows.items():
        view.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(view)
    return result


def write_feature_cards(cfg: DictConfig, space: FeatureSpace) -> Path:
    anchor, delta = space.anchor, space.delta
    candidates = np.flatnonzero(relevant_anchor_features(anchor, delta, space.relevant))
    if not len(candidates):  # nothing relevant: show the most frequent anchor features instead
        candidates = np.flatnonzero(anchor.active(delta))
    rank = np.array([-space.records.get(int(f), {}).get("rate_diff", 0.0) for f in candidates])
    counts = anchor.active_counts(delta, np.flatnonzero(space.labels == 1))[candidates]
    order = np.lexsort((-counts, rank))
    chosen = [int(f) for f in candidates[order][: cfg.cards]]
    path = Path(cfg.paths.output_dir) / "feature_cards.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cards_markdown(chosen, anchor, space.labels, space.records, space.relevant, delta,
                                   f"{cfg.task.name}: {len(chosen)} feature cards ({cfg.relevance.method})"))
    log.info("wrote %d feature cards to %s", len(chosen), path)
    return path


def benchmark_model(cfg: DictConfig) -> dict:
    if cfg.model is None:
        raise ValueError("mode=benchmark needs model=<train.py run folder, finetune artifact or its adapter folder>")
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    benchmark = OmegaConf.to_object(cfg.benchmark)
    texts, labels = load_benchmark(benchmark, cfg.paths.data_dir)
    result = {"model": cfg.model, **toxicity_metrics(labels, score_classifier(cfg, backbone, cfg.model, texts),
                                                     benchmark)}
    write_json_atomic(Path(cfg.paths.output_dir) / f"benchmark_{benchmark.name}.json", result)
    Console().print(result)
    return result


def build_leaderboard(cfg: DictConfig) -> dict:
    if cfg.runs is None:
        raise ValueError("mode=leaderboard needs runs=<folder with runs' metrics.json>")
    result = write_leaderboard(cfg.runs, cfg.paths.output_dir)
    print(result["markdown"])
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    if cfg.mode == "benchmark":
        benchmark_model(cfg)
    elif cfg.mode == "leaderboard":
        build_leaderboard(cfg)
    elif cfg.mode in ("dataset", "features"):
        (evaluate_dataset if cfg.mode == "dataset" else write_feature_cards)(cfg, build_feature_space(cfg))
    else:
        raise ValueError(f"mode={cfg.mode!r} is unknown; choose from benchmark, dataset, features, leaderboard")


if __name__ == "__main__":
    main()
