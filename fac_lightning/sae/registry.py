"""Registry of SAE architectures by name (``sae.architecture``), in the manner of SAELens's registry."""

from torch import nn

_SAE_CLASSES: dict[str, type[nn.Module]] = {}


def register_sae(cls: type[nn.Module]) -> type[nn.Module]:
    _SAE_CLASSES[cls.architecture] = cls
    return cls


def sae_class(architecture: str) -> type[nn.Module]:
    from fac_lightning.sae import topk  # noqa: F401  (registers the built-in architectures)

    if architecture not in _SAE_CLASSES:
        raise ValueError(f"sae.architecture={architecture!r} is not registered; choose from {sorted(_SAE_CLASSES)}")
    return _SAE_CLASSES[architecture]
