"""The one exit: every image the product writes for a user leaves through :func:`save_output`, every
clip (MP4, GIF) through :func:`save_clip`.

It checks the path (right kind of file, the folder exists, no overwrite without ``force``), lets
the protection mark the pixels, writes atomically with the record embedded (``records``), then lets
the protection sign and register the file. Training snapshots (a GAN's sample grids) are written
with their record by ``records.write_image`` directly: they are logs of a run, not works.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import check_output_path
from brushwork.records import IMAGE_SUFFIXES, Record, attach, record_of, write_image

#: The moving formats that leave through :func:`save_clip`.
CLIP_SUFFIXES = (".mp4", ".gif")
#: A last touch on every frame of a clip before it is encoded (the watermark).
FrameMark = Callable[[Image.Image], Image.Image]
Written = TypeVar("Written")


class Protection(Protocol):
    """What the output exit asks of a protection scheme (``brushwork.protect`` provides one)."""

    def before_write(self, image: Image.Image, record: Record, path: Path) -> Image.Image:
        """Mark the pixels of the image to be written to ``path`` (e.g. an invisible watermark) and note it
        in ``record.extra``."""

    def start_clip(self, record: Record, first_frame: Image.Image, path: Path) -> FrameMark | None:
        """Note in ``record.extra`` what a clip written to ``path`` and starting with ``first_frame`` will
        carry; return what marks each frame."""

    def abandon(self, record: Record) -> None:
        """The file was not written after all: give back what :meth:`before_write` or :meth:`start_clip`
        reserved (a work ID)."""

    def after_write(self, path: Path, record: Record) -> None:
        """Act on the written file, image or clip (e.g. XMP/IPTC source type, a C2PA signature, a registry entry)."""


def save_output(image: Image.Image, path: str | os.PathLike, record: Record | None = None, *, force: bool = False,
                protection: Protection | None = None, quality: int = 95, bit_depth: int = 8) -> Path:  # fmt: skip
    """Write ``image`` (PNG, JPEG, WebP or TIFF, by suffix) with its record; return the path.

    ``bit_depth=16``: a 16-bit TIFF, from an image made inside ``brushwork.high_precision()``."""
    record = record or record_of(image)
    if record is None:
        raise BrushworkError("this image carries no brushwork record; pass one (brushwork.records.new_record)")
    path = check_output_path(path, force, tuple(IMAGE_SUFFIXES))
    if protection is not None:
        marked = protection.before_write(image, record, path)
        if bit_depth == 16 and marked is not image:
            from brushwork.media import carry_high_precision  # media loads torch: only for a 16-bit print

            carry_high_precision(image, marked)
        image = marked
    if record.finished is None:
        record.finish()
    with _abandoned_on_failure(protection, record):
        written = write_image(image, path, record, quality, bit_depth)
    if protection is not None:
        protection.after_write(written, record)
    attach(image, record)
    return written


def save_clip(path: str | os.PathLike, record: Record, first_frame: Image.Image | None,
              write: Callable[[Path, str, FrameMark | None], Written], *, force: bool = False,
              protection: Protection | None = None, suffixes: tuple[str, ...] = CLIP_SUFFIXES) -> Written:  # fmt: skip
    """Write a clip through the exit: ``write(path, comment, mark)`` writes the file (atomically) with
    ``comment`` (the record, as JSON) in its metadata, passing every frame through ``mark`` (when not
    None) just before encoding it; then the protection signs and registers the file. ``first_frame``
    is the clip's first frame as it will be written (the protection chooses the work ID on it; only
    needed with a protection).
    Returns what ``write`` returns. The record is final before the first frame: its ``finished`` is
    the start."""
    path = check_output_path(path, force, suffixes)
    mark = protection.start_clip(record, first_frame, path) if protection is not None else None
    if record.finished is None:
        record.finish()
    with _abandoned_on_failure(protection, record):
        result = write(path, record.to_json(), mark)
    if protection is not None:
        protection.after_write(path, record)
    return result


@contextmanager
def _abandoned_on_failure(protection: Protection | None, record: Record) -> Iterator[None]:
    try:
        yield
    except BaseException:  # a full disk, a cancel, Ctrl-C: the output does not exist, nor should its ID
        if protection is not None:
            protection.abandon(record)
        raise


def gif_frame(image: Image.Image) -> Image.Image:
    """A frame as a GIF stores it: quantised to its own adaptive palette (what Pillow does to RGB);
    GIF writers use this, so that the watermark's write-time check sees exactly what is stored."""
    return image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
