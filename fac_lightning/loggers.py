"""The run logger named by ``logger=`` (W&B offline by default; csv, tensorboard), closed after each run, also
when the run fails (``run_logger``).

Closing matters for W&B: a ``-m`` sweep runs every job in one process, and a WandbLogger created while a wandb run
is still open silently logs into that run, so every job would land in the first job's run (and a failed job's run
would take the next job's metrics).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger


def build_logger(node: DictConfig | None) -> Logger | None:
    """The logger a ``logger=`` node instantiates (None: none)."""
    return instantiate(node) if node else None


def close_logger(logger: Logger | None, status: str = "success") -> None:
    if logger is None:
        return
    logger.finalize(status)
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish(exit_code=0 if status == "success" else 1)


@contextmanager
def run_logger(node: DictConfig | None) -> Iterator[Logger | None]:
    """The logger of a ``logger=`` node (``plan.RunPlan.logger``) for a block, closed when the block ends:
    ``success``, or ``failed`` if it raised (Ctrl-C included)."""
    logger = build_logger(node)
    try:
        yield logger
    except BaseException:
        close_logger(logger, "failed")
        raise
    close_logger(logger)
