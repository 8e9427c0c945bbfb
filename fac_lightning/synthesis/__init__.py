"""Synthesis strategies (``synthesis=fac | self_instruct | evol_instruct | magpie | cot_self_instruct | prismatic |
sao | synalign | seed_only | full_dataset | select_fac | select_random | select_anti | ...``), one module each, registered
in ``STRATEGIES``."""

from fac_lightning.registry import Registry

STRATEGIES = Registry("strategy", "synthesis.strategy", __name__, group="synthesis")
