"""Saving as the Python API does: the one exit (:mod:`brushwork.output`) with the product's protection on
unless the caller turns it off. ``output`` knows only the protection it is handed; turning ``"default"``
into a fresh :class:`brushwork.protect.Protection` happens here, one floor up, because ``protect`` itself
writes through ``output`` (were ``output`` to import it, the two would import each other)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.output import Protection, save_output, save_outputs
from brushwork.records import Record

PathLike = str | os.PathLike
#: ``protection``'s default: a fresh :class:`brushwork.protect.Protection` (watermark, provenance, registry).
DEFAULT_PROTECTION = "default"


def protection_of(protection: Protection | str | None) -> Protection | None:
    """``"default"``: a fresh protection (watermark, provenance, registry); None: none; or the one given."""
    if isinstance(protection, str):
        if protection != DEFAULT_PROTECTION:
            raise BrushworkError(f"protection is {DEFAULT_PROTECTION!r}, None or a brushwork.protect.Protection")
        # Loaded on the first save (about half a second): painting needs none of its signing libraries.
        from brushwork.protect import Protection as Protect

        return Protect()
    return protection


def save(image: Image.Image, path: PathLike, record: Record | None = None, *, force: bool = False,
         protection: Protection | str | None = DEFAULT_PROTECTION, quality: int = 95,
         bit_depth: int = 8) -> Path:  # fmt: skip
    """Write an output with its record through the one exit, protected: an invisible watermark, the
    IPTC AI-source tag, a C2PA signature (this computer's key, made on first use), and a registry
    entry. ``protection=None`` writes it unprotected; a ``brushwork.protect.Protection`` chooses."""
    return save_output(image, path, record, force=force, protection=protection_of(protection), quality=quality,
                       bit_depth=bit_depth)  # fmt: skip


def save_all(items: Iterable[tuple[Image.Image, PathLike]], *, force: bool = False,
             protection: Protection | str | None = DEFAULT_PROTECTION, quality: int = 95,
             bit_depth: int = 8) -> Iterator[Path]:  # fmt: skip
    """:func:`save` for many ``(image, path)`` pairs, yielding each path once written: the protection
    marks, signs and registers them a batch at a time (``output.save_outputs``)."""
    return save_outputs(((image, path, None) for image, path in items), force=force,
                        protection=protection_of(protection), quality=quality, bit_depth=bit_depth)  # fmt: skip
