"""SIGTERM (what a cluster scheduler sends before it kills a job) stops a run the way Ctrl-C does: an exception in
the main thread, so no artifact is finished half-way. Every stage builds in ``<artifact>.partial/`` and keeps what it
finished there (Lightning checkpoints, scored chunks, synthesis units), so the same command, run again, resumes.

Inside a Lightning fit, Lightning's own SIGTERM handler runs first (it records the signal); ours then raises, and
Lightning tears the fit down and re-raises it. The exit status is 143 (128 + SIGTERM), as a shell reports a job
killed by SIGTERM.
"""

import signal
import sys


class Terminated(SystemExit):
    """Raised by the SIGTERM handler; a SystemExit, so that no ``except Exception`` swallows it."""

    def __init__(self):
        super().__init__(128 + signal.SIGTERM)


def _stop(signum, frame) -> None:
    print("received SIGTERM: stopping; finished work is kept in the artifacts' .partial folders, and running the "
          "same command again resumes from it", file=sys.stderr, flush=True)
    raise Terminated


def stop_on_sigterm() -> None:
    """Install the handler (entry points call this first; only the main thread may)."""
    signal.signal(signal.SIGTERM, _stop)
