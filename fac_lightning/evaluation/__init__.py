"""Benchmarks (``benchmark=toxicchat | moderation``): one module per kind, registered in ``BENCHMARKS``."""

from fac_lightning.registry import Registry

BENCHMARKS = Registry("benchmark kind", "benchmark.kind", __name__, group="benchmark")
