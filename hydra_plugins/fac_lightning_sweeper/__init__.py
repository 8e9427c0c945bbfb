"""fac_lightning's Hydra sweeper (``hydra/sweeper=fac``, the default of ``conf/hydra/default.yaml``). Hydra finds
plugins only under the ``hydra_plugins`` namespace package, hence this folder beside ``fac_lightning``."""
