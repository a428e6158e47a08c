"""One way to describe a setting of an engine's config dataclass: its default, its help and its choices.

The help and the choice list live on the field (``dataclasses.field`` metadata), beside the setting
itself, so every face of the library (the CLI's flags, the studio's form) shows the same words and
never restates a choice list.
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any


def setting(default: Any = MISSING, *, help: str, choices: tuple | None = None, default_factory: Any = MISSING):
    """A dataclass field with its help text (and its choices, if it has a fixed list)."""
    metadata = {"help": help, **({"choices": tuple(choices)} if choices is not None else {})}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def help_of(config_cls, name: str) -> str:
    """The help of ``config_cls``'s field ``name``: for a subclass that changes only the default."""
    return next(f.metadata["help"] for f in fields(config_cls) if f.name == name)
