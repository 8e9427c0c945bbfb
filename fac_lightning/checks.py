"""Range and choice checks of config fields, run where a Config object is built, before any model loads.

A Config dataclass checks its own fields in ``__post_init__`` with the helpers below, naming each field relative to
itself (``temperature``). Whoever builds it adds the key path where it was found (``ConfigError.under``):
``component_config`` adds the component's group (``synthesis``), ``config.validate_config`` walks the root config.
So the user reads one line naming the full key, the value and what is allowed::

    synthesis.temperature=-1.0: must be >= 0 (0 = greedy decoding)

An unset optional field (None) is not checked: None means "the documented default".
"""

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A config value out of its range or choices; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, rule: str, related: dict[str, Any] | None = None):
        self.key, self.value, self.rule, self.related = key, value, rule, dict(related or {})
        head = ", ".join(f"{k}={v!r}" for k, v in {key: value, **self.related}.items())
        super().__init__(f"{head}: {rule}")

    def under(self, prefix: str) -> "ConfigError":
        """The same error, its keys read from ``prefix`` (``k`` under ``sae`` is ``sae.k``)."""
        return ConfigError(f"{prefix}.{self.key}", self.value, self.rule,
                           {f"{prefix}.{k}": v for k, v in self.related.items()})


def require(ok: bool, key: str, value: Any, rule: str, related: dict[str, Any] | None = None) -> None:
    if not ok:
        raise ConfigError(key, value, rule, related)


def at_least(cfg, bound: float, *names: str, why: str = "") -> None:
    """Each named field is >= ``bound`` (counts: ``at_least(cfg, 1, "epochs")``)."""
    for name in names:
        value = getattr(cfg, name)
        require(value is None or value >= bound, name, value, f"must be >= {bound}{why}")


def above(cfg, bound: float, *names: str, why: str = "") -> None:
    """Each named field is > ``bound`` (rates: ``above(cfg, 0, "lr")``)."""
    for name in names:
        value = getattr(cfg, name)
        require(value is None or value > bound, name, value, f"must be > {bound}{why}")


def within(cfg, name: str, low: float, high: float, low_open: bool = False, high_open: bool = False,
           why: str = "") -> None:
    """The field lies in the interval, e.g. top-p in (0, 1]: ``within(cfg, "top_p", 0, 1, low_open=True)``."""
    value = getattr(cfg, name)
    if value is None:
        return
    ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    require(ok, name, value, f"must be in {interval}{why}")


def one_of(cfg, name: str, choices: Iterable[str]) -> None:
    value = getattr(cfg, name)
    choices = list(choices)
    require(value is None or value in choices, name, value, f"must be one of {choices}")
