"""The run plan: the artifacts a run's stages read and write, named from typed configs before any model loads.

Every cached stage is a ``Stage``: the folder kind under ``paths.artifacts_dir``, a readable label, the stage's
version, the names of the upstream artifacts it is built from and its own key fields. Its folder is
``<label>-<hash(version, upstream names, fields)>``. So an artifact's identity is what it was built from plus its own
settings: a feature table names its SAE, the relevance selection its anchor table, a row set its relevance and seed
table, G-Vendi its row set; two runs share an artifact exactly when everything upstream of it is shared.

- A config field that does not change a stage's output (a scoring batch size, a timeout) carries ``NOT_IN_KEY`` metadata on
  its dataclass field (``artifacts.key_fields`` leaves it out); nothing else decides what is in a key.
- ``backbone.dtype=auto`` is resolved to the dtype the backbone will run in on this machine (bf16 on a GPU or a CPU
  with bf16 support, fp32 on other CPUs), so an SAE trained in bf16 and one trained in fp32 never share a folder.
- Each stage has a version (``VERSION`` in its module, plus ``version`` on pluggable components): a change of code
  that changes a stage's output on the same input bumps it, so old artifacts are not reused silently.
  ``tests/test_stage_versions.py`` runs every stage on a fixed tiny input and fails when the output moved and the
  version did not.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fac_lightning.artifacts import config_hash, key_fields
from fac_lightning.config import (
    ActivationsConfig,
    BackboneConfig,
    DataConfig,
    EvaluateRequest,
    FeaturesConfig,
    PathsConfig,
    TaskConfig,
    component_config,
    validate_config,
)
from fac_lightning.data.examples import Conversation
from fac_lightning.metrics.g_vendi import GVendiConfig
from fac_lightning.trainer import FitContext, process_count


@dataclass(frozen=True)
class Stage:
    """One cached artifact of the run: ``<root>/<kind>/<label>-<hash>``."""

    root: str
    kind: str
    label: str
    version: Any
    upstream: tuple[str, ...] = ()
    """Folder names of the artifacts this one is built from."""
    fields: Any = None
    """Its own key fields, as plain values."""

    @property
    def name(self) -> str:
        return f"{self.label}-{config_hash(self.version, list(self.upstream), self.fields)}"

    @property
    def path(self) -> Path:
        return Path(self.root) / self.kind / self.name


def resolved_dtype(backbone: BackboneConfig) -> str:
    """The dtype the backbone runs in on this machine (``auto`` resolved as ``load_backbone`` resolves it)."""
    from fac_lightning.backbone import resolve_device, resolve_dtype

    return str(resolve_dtype(backbone.dtype, resolve_device(backbone.device))).removeprefix("torch.")


def backbone_identity(backbone: BackboneConfig) -> dict:
    """The backbone's key fields, with the dtype it really runs in."""
    return {**key_fields(backbone), "dtype": resolved_dtype(backbone)}


def table_stage(root: str, sae: str, label: str, conversations: list[Conversation], features: FeaturesConfig,
                max_length: int) -> Stage:
    """A data set's FeatureTable: its SAE, the data set's content, the scoring settings (not delta: a table keeps
    every score above ``features.floor``) and the backbone's max length."""
    from fac_lightning.features.scorer import SCORER_VERSION

    return Stage(root, "features", label, SCORER_VERSION, (sae,),
                 {"data": config_hash(conversations), "features": key_fields(features), "max_length": max_length})


USES = ("sae", "feature_space", "synthesis", "finetune", "benchmark")
"""What a run can use, in chain order: the SAE, the task's feature space (anchor and seed tables, relevance), the
strategy's rows, the finetune, the benchmark. Each entry point names what it runs (``stages.preflight``)."""


def built(stage: Callable[[], Stage]) -> bool:
    """Whether the stage's artifact exists; False when its name cannot be worked out yet (its data is missing or bad,
    which the data's own requirement then reports)."""
    try:
        return stage().path.exists()
    except Exception:  # noqa: BLE001 - any failure here is some other requirement's to name
        return False


@dataclass(frozen=True)
class RunPlan:
    """A run, typed: its settings and component configs, its components (``strategy``, ``finetune``, ``benchmark``,
    ``generator``: built on first use, so a run builds only those it uses) and its stages (``sae``, ``anchor``,
    ``seed_table``, ``relevant``; ``rows``, ``g_vendi`` and ``model`` follow from the strategy and rows). Upstream
    stages that read data (tables, relevance) are named on first use: a ``stage=sae`` run never loads the task's data.
    ``requirements`` lists what the used components read, import and call, for preflight. Stage functions take the
    plan, never the composed config: ``cfg`` is read in this module only (to build components from their nodes)."""

    cfg: DictConfig = field(repr=False)
    stage: str
    """train.py's ``stage`` (experiment | sae)."""
    seed: int
    """The run seed: a budgeted strategy's draws, the background rows' draw, a finetune's order and init."""
    n_samples: int
    """The synthesis budget (rows a budgeted strategy writes)."""
    paths: PathsConfig
    """``paths.output_dir`` is Hydra's run folder: None outside a Hydra app unless the caller set it."""
    backbone: BackboneConfig
    sae_config: Any
    """The ``sae=`` option on its architecture's Config (``run.sae`` is the SAE's stage)."""
    activations: ActivationsConfig
    data: DataConfig
    """The SAE's corpus."""
    features: FeaturesConfig
    task: TaskConfig
    relevance: Any
    g_vendi_config: GVendiConfig
    trainer: DictConfig | None
    """The ``trainer=`` node: a Lightning Trainer to instantiate (None where the root has none)."""
    callbacks: DictConfig | None
    logger: DictConfig | None
    """The ``logger=`` node (None: no logger)."""
    evaluation: EvaluateRequest | None
    """``evaluate.py``'s request (None for train.py and synthesize.py)."""

    @property
    def root(self) -> str:
        return self.paths.artifacts_dir

    @property
    def data_dir(self) -> str:
        return self.paths.data_dir

    @cached_property
    def config(self) -> dict:
        """The resolved config, as manifests record it and loggers log it."""
        return OmegaConf.to_container(self.cfg, resolve=True)

    def fit_context(self, logger) -> FitContext:
        """What a fit reads of the run (``trainer.FitContext``)."""
        return FitContext(self.trainer, self.callbacks, logger, self.seed, self.task.name)

    @cached_property
    def strategy(self):
        from fac_lightning.synthesis.base import build_strategy

        return build_strategy(self.cfg.synthesis, self.cfg.prompts, self.task, self.seed, self.n_samples)

    @cached_property
    def finetune(self):
        from fac_lightning.finetune.base import build_finetune

        return build_finetune(self.cfg.finetune)

    @cached_property
    def benchmark(self):
        from fac_lightning.evaluation.base import build_benchmark

        return build_benchmark(self.cfg.benchmark, self.data_dir)

    @cached_property
    def generator(self):
        """The generator's typed config (``generator=``), for whatever generates: the strategy, a judging relevance
        method."""
        from fac_lightning.generation import GENERATORS

        return component_config(self.cfg.generator, GENERATORS)

    def read_parts(self, synthesis: bool) -> list[str]:
        """The task parts a run reads: the anchor's sides and the seed, and with ``synthesis`` the strategy's part and
        the background part its training set adds."""
        from fac_lightning.checks import require

        parts = list(self.task.REQUIRED_PARTS)
        if synthesis:
            strategy = self.strategy
            parts += [strategy.part, self.task.background_part if strategy.background else None]
            require(strategy.part is None or strategy.part in self.task.parts, "synthesis.part", strategy.part,
                    f"task {self.task.name!r} has no such part (task.parts: {list(self.task.parts)})")
        return [p for p in dict.fromkeys(parts) if p is not None]

    def requirements(self, uses: tuple[str, ...], task: str | None = None) -> list:
        """Every file, package and endpoint the run needs (``fac_lightning.requirements``), by what it ``uses``
        (``USES``): the SAE corpus while the SAE is still to be trained, the task parts it reads, and what each used
        component declares (the generator's where something still has to generate: a cached row set or relevance
        selection needs no server). ``task``: the task a benchmark's model was trained for, where it is not this
        run's."""
        from fac_lightning.relevance import RELEVANCE
        from fac_lightning.requirements import SavedModel, Source

        needed = []
        if "sae" in uses and not self.sae.path.exists():
            needed += [Source(f"data.sources.{i}", s, self.data_dir, rows=False)
                       for i, s in enumerate(self.data.sources)]
        generates = False
        if "feature_space" in uses:
            needed += [Source(f"task.parts.{part}.sources.{i}", s, self.data_dir)
                       for part in self.read_parts("synthesis" in uses)
                       for i, s in enumerate(self.task.parts[part].sources)]
            generates = RELEVANCE.get(self.relevance.method).cls.uses_generator and not built(lambda: self.relevant)
        if "synthesis" in uses:
            needed += self.strategy.requirements(self.data_dir)
            generates = generates or (self.strategy.generative and not built(lambda: self.rows(self.strategy)))
        if generates:
            needed += self.generator.requirements(self.data_dir)
        if "finetune" in uses:
            needed += self.finetune.requirements(self.data_dir)
        if "benchmark" in uses:
            model = self.evaluation and self.evaluation.model  # evaluate.py mode=benchmark: its task in model.json
            if "finetune" not in uses and model not in (None, "base"):
                saved = SavedModel("model", model)
                needed.append(saved)
                task = saved.meta().get("task")
            needed += self.benchmark.requirements(task or (self.task.name if "finetune" in uses else None))
        return needed

    @cached_property
    def judge(self) -> dict | None:
        """The generator and rubric of a relevance method that asks one (None otherwise)."""
        from fac_lightning.relevance import RELEVANCE

        if not RELEVANCE.get(self.relevance.method).cls.uses_generator:
            return None
        return {"generator": key_fields(self.generator), "rubric": self.task.relevance_rubric}

    @cached_property
    def sae(self) -> Stage:
        """The SAE: the backbone as it runs and the layer it reads, the SAE recipe (with its own seed), the activation
        settings, the corpus and the fit's precision. Not ``backbone.max_length`` (SAE sequences are cut at
        ``activations.max_length``)."""
        from fac_lightning.stages.sae import VERSION
        from fac_lightning.trainer import resolve_precision

        trainer = self.trainer or {}
        precision = resolve_precision(str(trainer.get("precision", "32-true")), str(trainer.get("accelerator", "cpu")))
        backbone = {k: v for k, v in backbone_identity(self.backbone).items() if k != "max_length"}
        return Stage(self.root, "sae", f"{self.backbone.name}-L{self.backbone.layer}", VERSION, (), {
            "backbone": backbone, "sae": key_fields(self.sae_config), "activations": key_fields(self.activations),
            "data": key_fields(self.data), "precision": precision})

    def table(self, label: str, conversations: list[Conversation]) -> Stage:
        return table_stage(self.root, self.sae.name, label, conversations, self.features, self.backbone.max_length)

    @cached_property
    def anchor_set(self) -> tuple[list[Conversation], list[int]]:
        """The anchor's conversations (positive side first) and their labels (1 = task-positive)."""
        from fac_lightning.data.task_parts import task_parts

        parts = task_parts(self.task, self.data_dir)
        pos, neg = parts["anchor_positive"], parts["anchor_negative"]
        return [e.conversation for e in pos + neg], [1] * len(pos) + [0] * len(neg)

    @cached_property
    def seed_conversations(self) -> list[Conversation]:
        from fac_lightning.data.task_parts import task_part

        return [e.conversation for e in task_part(self.task, "seed", self.data_dir)]

    @cached_property
    def anchor(self) -> Stage:
        return self.table(f"{self.task.name}-anchor", self.anchor_set[0])

    @cached_property
    def seed_table(self) -> Stage:
        return self.table(f"{self.task.name}-seed", self.seed_conversations)

    @cached_property
    def relevant(self) -> Stage:
        """The relevance selection R: the anchor table, the anchor's labels, the method's settings, delta, and the
        judge (generator and rubric) of a method that asks one."""
        from fac_lightning.relevance import RELEVANCE
        from fac_lightning.stages.feature_space import VERSION

        method = RELEVANCE.get(self.relevance.method).cls
        return Stage(self.root, "relevance", self.anchor.name, (VERSION, method.version), (self.anchor.name,), {
            "relevance": key_fields(self.relevance), "delta": self.features.delta, "labels": self.anchor_set[1],
            "judge": self.judge})

    def rows(self, strategy=None) -> Stage:
        """A strategy's row set (the run's strategy by default): the relevance selection and the seed table it reads
        the missing features from, the task's rules and data, the strategy with its prompts, and, for budgeted
        strategies, the budget and seed and the generator of those that generate."""
        from fac_lightning.data.task_parts import parts_fingerprint
        from fac_lightning.stages.synthesis import VERSION

        strategy = strategy or self.strategy
        generator = key_fields(self.generator) if strategy.generative else None
        return Stage(self.root, "synthetic", f"{self.task.name}-{strategy.name}", (VERSION, strategy.version),
                     (self.relevant.name, self.seed_table.name), {
                         "task": key_fields(self.task), "data": parts_fingerprint(self.task, self.data_dir,
                                                                                   strategy.part),
                         "synthesis": key_fields(strategy.cfg), "prompts": key_fields(self.cfg.get("prompts")),
                         "budget": {"n_samples": self.n_samples, "seed": self.seed, "generator": generator}
                         if strategy.budgeted else None,
                         "extra": strategy.fingerprint(self.data_dir)})

    def model(self, rows: list[dict]) -> Stage:
        """The finetune of ``rows``: the backbone as it runs, the kind's training settings, the seed and the rows;
        under DDP also the number of processes (``finetune.batch_size`` is per process)."""
        from fac_lightning.finetune.base import VERSION
        processes = process_count(self.trainer)
        return Stage(self.root, "finetune", f"{self.task.name}-{self.finetune.name}", (VERSION, self.finetune.version),
                     (), {"backbone": backbone_identity(self.backbone), "training": key_fields(self.finetune.cfg),
                          "seed": self.seed, "rows": config_hash(rows), **({"processes": processes} if processes > 1
                                                                              else {})})

    def g_vendi(self, rows_name: str) -> Stage:
        """G-Vendi of a row set: the row set, the gradient settings and the proxy (the backbone as it runs when
        ``g_vendi.proxy`` is None)."""
        from fac_lightning.metrics.g_vendi import VERSION

        settings = self.g_vendi_config
        proxy = backbone_identity(self.backbone) if settings.proxy is None else None
        return Stage(self.root, "g_vendi", rows_name, VERSION, (rows_name,),
                     {"g_vendi": key_fields(settings), "proxy": proxy})


def plan(cfg: DictConfig) -> RunPlan:
    """The run plan of a composed config (train.yaml or evaluate.yaml): every value checked (``validate_config``)
    and the typed configs built here, so a bad value fails here, naming its key. The one reader of the composed
    config outside this module's components."""
    from fac_lightning.relevance import RELEVANCE
    from fac_lightning.sae import SAE_ARCHITECTURES

    validate_config(cfg)
    cfg = copy.deepcopy(cfg)  # the plan is a snapshot: a later change of the caller's config does not reach it
    typed = OmegaConf.to_object
    evaluation = (EvaluateRequest(**{f.name: cfg[f.name] for f in fields(EvaluateRequest)})
                  if "mode" in cfg else None)
    paths = PathsConfig(**{k: OmegaConf.select(cfg.paths, k, throw_on_resolution_failure=k != "output_dir")
                           for k in ("root_dir", "data_dir", "cache_dir", "artifacts_dir", "output_dir")})
    return RunPlan(cfg, cfg.stage, cfg.seed, cfg.n_samples, paths, typed(cfg.backbone),
                   component_config(cfg.sae, SAE_ARCHITECTURES), typed(cfg.activations), typed(cfg.data),
                   typed(cfg.features), typed(cfg.task), component_config(cfg.relevance, RELEVANCE),
                   typed(cfg.g_vendi), cfg.get("trainer"), cfg.get("callbacks"), cfg.get("logger"), evaluation)
