"""The conversation types every layer shares (generators, rows, features, data loading), in a module that imports
nothing of the package, so that the config, the generators and the data loaders never import each other in a
circle."""

from typing import NamedTuple

Conversation = list[dict[str, str]]
"""Chat messages, ``{"role": "user" | "assistant" | "system", "content": ...}``, in order."""


class Example(NamedTuple):
    """One real example of a source: a conversation and the source's label; for a preference-pair source the
    conversation is the chosen one and ``rejected`` the other."""

    conversation: Conversation
    label: int | None
    rejected: Conversation | None = None
