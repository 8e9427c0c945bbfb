"""SAE architectures (``sae.architecture``), one module each, registered in ``SAE_ARCHITECTURES``."""

from fac_lightning.registry import Registry

SAE_ARCHITECTURES = Registry("SAE architecture", "sae.architecture", __name__, group="sae")


def sae_class(architecture: str):
    return SAE_ARCHITECTURES.get(architecture).cls
