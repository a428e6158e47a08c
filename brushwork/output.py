"""The one exit: every image the product writes for a user leaves through :func:`save_output`.

It checks the path (right kind of file, the folder exists, no overwrite without ``force``), lets
the protection mark the pixels, writes atomically with the record embedded (``records``), then lets
the protection sign and register the file. Training snapshots (a GAN's sample grids) are written
with their record by ``records.write_image`` directly: they are logs of a run, not works.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import check_output_path
from brushwork.media import carry_high_precision
from brushwork.records import IMAGE_SUFFIXES, Record, attach, record_of, write_image


class Protection(Protocol):
    """What the output exit asks of a protection scheme (``brushwork.protect`` provides one)."""

    def before_write(self, image: Image.Image, record: Record) -> Image.Image:
        """Mark the pixels (e.g. an invisible watermark) and note it in ``record.extra``."""

    def after_write(self, path: Path, record: Record) -> None:
        """Act on the written file (e.g. XMP/IPTC source type, a C2PA signature, a registry entry)."""


def save_output(image: Image.Image, path: str | os.PathLike, record: Record | None = None, *, force: bool = False,
                protection: Protection | None = None, quality: int = 95, bit_depth: int = 8) -> Path:  # fmt: skip
    """Write ``image`` (PNG, JPEG, WebP or TIFF, by suffix) with its record; return the path.

    ``bit_depth=16``: a 16-bit TIFF, from an image made inside ``brushwork.high_precision()``."""
    record = record or record_of(image)
    if record is None:
        raise BrushworkError("this image carries no brushwork record; pass one (brushwork.records.new_record)")
    path = check_output_path(path, force, tuple(IMAGE_SUFFIXES))
    if protection is not None:
        marked = protection.before_write(image, record)
        if bit_depth == 16 and marked is not image:
            carry_high_precision(image, marked)
        image = marked
    if record.finished is None:
        record.finish()
    written = write_image(image, path, record, quality, bit_depth)
    if protection is not None:
        protection.after_write(written, record)
    attach(image, record)
    return written
