"""fac_lightning: measure and synthesize post-training data in an LLM's SAE feature space (FAC Synthesis)."""

__version__ = "0.1.0"
