"""The checks every entry point runs before any model loads, from the run's plan: each config field's range and
choices (``config.validate_config``), the devices asked for, the backbone's layer and the SAE's width against the
backbone's shape (read from its config, not its weights), the finetune's own checks against that shape
(``Finetune.preflight``: a steering layer, the other backbone a fine-tune trains), that the chain's components fit
together, every file, optional package and remote endpoint the used components declare (``RunPlan.requirements``),
and the real rows a strategy turns into training rows."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fac_lightning.backbone import backbone_shape, check_layer
from fac_lightning.checks import ConfigError, require
from fac_lightning.data.task_parts import task_parts
from fac_lightning.files import DataError
from fac_lightning.plan import USES, RunPlan, plan


def check_sae_width(sae, d_model: int) -> None:
    latents = sae.num_latents or sae.expansion_factor * d_model
    how = "sae.num_latents" if sae.num_latents else f"sae.expansion_factor={sae.expansion_factor} x d_model {d_model}"
    require(sae.k <= latents, "sae.k", sae.k, f"must be <= the SAE's latents, {latents} ({how})")


DISTRIBUTED = "ddp"
"""The one multi-process strategy: DDP through Lightning's launcher, which starts ranks 1.. by re-running the
command line; each rank then joins rank 0's fits (``artifacts.ensure_artifact``)."""


def check_strategy(run: RunPlan) -> None:
    """``trainer=ddp`` runs the SAE's fit (``stage=sae``) and a LoRA finetune's (``stage=experiment`` on a built SAE)
    on every device; what cannot run under it fails here, naming what to use instead."""
    strategy = str(run.trainer.get("strategy", "auto"))
    if strategy in ("auto", "single_device"):
        return
    if strategy != DISTRIBUTED:
        raise ConfigError("trainer.strategy", strategy, "is not supported: use trainer=ddp (strategy ddp) for the "
                          "SAE stage and the LoRA finetunes, and one device (trainer=gpu or trainer=cpu) otherwise")
    if run.stage == "experiment":
        if not run.finetune.distributed:
            raise ConfigError("trainer", "ddp", f"runs the LoRA finetunes only; finetune={run.finetune.name} fits "
                              "one device: use trainer=gpu")
        if not run.sae.path.exists():  # the ranks would all redo the chain before the finetune's fit
            raise ConfigError("trainer", "ddp", "needs the SAE built first, so that only the finetune runs on every "
                              "device: run `python train.py stage=sae trainer=ddp` (same overrides), then this")
    elif run.stage != "sae":
        raise ConfigError("trainer", "ddp", f"does not run stage={run.stage}: use trainer=gpu")
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError("trainer", "ddp", "cannot run inside a -m sweep: Lightning's DDP launcher starts the other "
                          "ranks by re-running the command line, which would re-run the sweep. Train the SAE alone "
                          "(`python train.py stage=sae trainer=ddp`); the sweep then reuses it")


def check_device(run: RunPlan) -> None:
    """The device the trainer and the backbone ask for exists on this machine."""
    import torch

    if torch.cuda.is_available():
        return
    accelerator = str(run.trainer.get("accelerator", "cpu")) if run.trainer is not None else "cpu"
    if accelerator in ("gpu", "cuda"):
        raise ConfigError("trainer.accelerator", accelerator, "asks for a GPU, and torch sees no CUDA device here "
                          "(torch.cuda.is_available() is False): use trainer=cpu, or a torch build with CUDA")
    if str(run.backbone.device).startswith("cuda"):
        raise ConfigError("backbone.device", run.backbone.device, "torch sees no CUDA device here "
                          "(torch.cuda.is_available() is False): use backbone.device=auto or cpu")


def check_chain(run: RunPlan) -> None:
    """The task's rows are ones the finetune trains on, and the benchmark evaluates the model kind it produces."""
    finetune, benchmark, task = run.finetune, run.benchmark, run.task
    if task.row_format not in finetune.consumes:
        raise ValueError(f"finetune={finetune.name} trains on {list(finetune.consumes)} rows; task={task.name} "
                         f"has task.row_format={task.row_format!r}")
    if benchmark.needs != finetune.produces:
        raise ValueError(f"benchmark={benchmark.cfg.name} evaluates a {benchmark.needs!r} model; finetune="
                         f"{finetune.name} produces a {finetune.produces!r}")


def check_rows(strategy, part: str, examples) -> None:
    """Every real example of a part the run trains on makes a row of the task's format (an instruction whose answer
    echoes it does not); the first that does not fails, naming the part, its sources and the example."""
    sources = [s.local_path or s.hub_id for s in strategy.task.parts[part].sources]
    for i, example in enumerate(examples, start=1):
        try:
            strategy.format.from_example(example)
        except ValueError as e:
            text = example.conversation[0]["content"][:60] if example.conversation else ""
            raise DataError(f"task part {part!r} ({', '.join(map(str, sources))}): example {i} ({text!r}) makes no "
                            f"{strategy.task.row_format!r} row: {e}") from None


def check_strategy_data(run: RunPlan, trains: bool) -> None:
    """The strategy's own data checks (selection: its pool against the budget), and every real row it (and, for a run
    that ``trains``, the background part) turns into a training row."""
    strategy = run.strategy
    strategy.check_data(run.data_dir)
    parts = {strategy.part, run.task.background_part if trains else None} - {None}
    for part in sorted(parts):
        check_rows(strategy, part, task_parts(run.task, run.data_dir, part)[part])


def preflight(cfg: DictConfig, uses: tuple[str, ...] = USES) -> RunPlan:
    """Fail now, naming the key, file or endpoint, on anything that would fail after a model loads; return the run's
    plan with the components it ``uses`` (``plan.USES``) built. Every file those read, package they import and
    endpoint they call is checked (``RunPlan.requirements``)."""
    run = plan(cfg)
    check_device(run)
    if run.trainer is not None:
        check_strategy(run)
    if "sae" in uses:
        shape = backbone_shape(run.backbone, run.paths.cache_dir)
        check_layer(run.backbone, shape)
        check_sae_width(run.sae_config, shape.d_model)
        if "finetune" in uses:
            run.finetune.preflight(run.backbone, shape, run.paths.cache_dir)
    if {"synthesis", "finetune", "benchmark"} <= set(uses):
        check_chain(run)
    for requirement in run.requirements(uses):
        requirement.check()
    if "synthesis" in uses:
        check_strategy_data(run, "finetune" in uses)
        if "benchmark" in uses:
            run.benchmark.check_task(run.task, run.data_dir)
    return run
