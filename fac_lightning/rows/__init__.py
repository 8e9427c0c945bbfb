"""Row formats (``task.row_format``): one module each, registered in ``ROW_FORMATS``."""

from fac_lightning.registry import Registry

ROW_FORMATS = Registry("row format", "task.row_format", __name__)


def row_format(name: str):
    """The RowFormat instance named ``name`` (unknown names fail listing the registered ones)."""
    return ROW_FORMATS.get(name).cls()
