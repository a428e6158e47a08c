"""The one exit: every image the product writes for a user leaves through :func:`save_output`, every
clip (MP4, GIF) through :func:`save_clip`.

It checks the path (right kind of file, the folder exists, no overwrite without ``force``), lets
the protection mark the pixels, writes atomically with the record embedded (``records``), then lets
the protection sign and register the file. Training snapshots (a GAN's sample grids) are written
with their record by ``records.write_image`` directly: they are logs of a run, not works.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, check_output_path
from brushwork.records import IMAGE_SUFFIXES, Record, attach, encode_image, record_of

#: The moving formats that leave through :func:`save_clip`.
CLIP_SUFFIXES = (".mp4", ".gif")
#: A last touch on every frame of a clip before it is encoded (the watermark).
FrameMark = Callable[[Image.Image], Image.Image]
Written = TypeVar("Written")


class Protection(Protocol):
    """What the output exit asks of a protection scheme (``brushwork.protect`` provides one).

    One output is one transaction: ``before_write`` (reserve, mark), ``seal`` (sign the bytes, nothing on
    disk yet), the exit publishes the file, ``after_write`` (register); ``abandon`` undoes a reservation
    when any step fails, and the exit removes a file it published but could not register."""

    def before_write_many(self, images: list[Image.Image], records: list[Record],
                          paths: list[Path]) -> list[Image.Image]:  # fmt: skip
        """Mark the pixels of the images to be written to ``paths`` (e.g. an invisible watermark) and note it
        in each ``record.extra``."""

    def start_clip(self, record: Record, first_frame: Image.Image, path: Path) -> FrameMark | None:
        """Note in ``record.extra`` what a clip written to ``path`` and starting with ``first_frame`` will
        carry; return what marks each frame."""

    def seal(self, data: bytes, record: Record, path: Path) -> bytes:
        """The encoded image to be written to ``path``, with what the protection adds (e.g. a signature)."""

    def abandon_many(self, records: list[Record]) -> None:
        """The files were not written after all: give back what ``before_write_many`` or ``start_clip``
        reserved (a work ID)."""

    def after_write_many(self, paths: list[Path], records: list[Record]) -> None:
        """Act on the written files, images or clips (a clip is signed here, written by its own writer; a
        registry entry)."""


#: Pictures :func:`save_outputs` marks, signs and registers together.
BATCH = 32


def save_output(image: Image.Image, path: str | os.PathLike, record: Record | None = None, *, force: bool = False,
                protection: Protection | None = None, quality: int = 95, bit_depth: int = 8) -> Path:  # fmt: skip
    """Write ``image`` (PNG, JPEG, WebP or TIFF, by suffix) with its record; return the path.

    ``bit_depth=16``: a 16-bit TIFF, from an image made inside ``brushwork.high_precision()``.
    With a protection, nothing is on disk until the file is marked and signed; it is then written
    in one atomic step and registered; when registering fails the file is removed again."""
    return next(save_outputs([(image, path, record)], force=force, protection=protection, quality=quality,
                             bit_depth=bit_depth))  # fmt: skip


def save_outputs(items: Iterable[tuple[Image.Image, str | os.PathLike, Record | None]], *, force: bool = False,
                 protection: Protection | None = None, quality: int = 95, bit_depth: int = 8,
                 batch: int = BATCH) -> Iterator[Path]:  # fmt: skip
    """:func:`save_output` for many pictures, ``(image, path, record or None)`` each, yielding each path
    as it is written: the protection marks a batch in one go and registers it in one transaction.
    A failure leaves the batches already yielded written and registered, and nothing of its own."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= batch:
            yield from _save_batch(chunk, force, protection, quality, bit_depth)
            chunk = []
    if chunk:
        yield from _save_batch(chunk, force, protection, quality, bit_depth)


def _save_batch(items: list, force: bool, protection: Protection | None, quality: int, bit_depth: int) -> list[Path]:
    images, paths, records = [], [], []
    for image, path, record in items:
        record = record or record_of(image)
        if record is None:
            raise BrushworkError("this image carries no brushwork record; pass one (brushwork.records.new_record)")
        images.append(image)
        paths.append(check_output_path(path, force, tuple(IMAGE_SUFFIXES)))
        records.append(record)
    if len(set(paths)) < len(paths):
        raise BrushworkError(f"{paths[0].parent}: two outputs of one batch have the same name")
    marked = images
    if protection is not None:
        marked = protection.before_write_many(images, records, paths)
        for original, image in zip(images, marked, strict=True):
            if bit_depth == 16 and image is not original:
                from brushwork.media import carry_high_precision  # media loads torch: only for a 16-bit print

                carry_high_precision(original, image)
    written: list[Path] = []
    with published_or_nothing(protection, records, written):
        blobs = []
        for image, path, record in zip(marked, paths, records, strict=True):
            if record.finished is None:
                record.finish()
            data = encode_image(image, path, record, quality, bit_depth)
            blobs.append(protection.seal(data, record, path) if protection is not None else data)
        for path, data in zip(paths, blobs, strict=True):
            written.append(atomic_write(path, lambda tmp, data=data: Path(tmp).write_bytes(data)))
        if protection is not None:
            protection.after_write_many(paths, records)
    for image, record in zip(images, records, strict=True):
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
    written: list[Path] = []
    with published_or_nothing(protection, [record], written):
        result = write(path, record.to_json(), mark)
        written.append(path)
        if protection is not None:  # signs the clip in place, then registers it
            protection.after_write_many([path], [record])
    return result


@contextmanager
def published_or_nothing(protection: Protection | None, records: list[Record], written: list[Path]) -> Iterator[None]:
    """A full disk, a bad key, a cancel, Ctrl-C: the outputs do not exist (those already published are
    removed: a file that is not signed and registered as it says is not published), nor do their IDs."""
    try:
        yield
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if protection is not None:
            protection.abandon_many(records)
        raise


def gif_frame(image: Image.Image) -> Image.Image:
    """A frame as a GIF stores it: quantised to its own adaptive palette (what Pillow does to RGB);
    GIF writers use this, so that the watermark's write-time check sees exactly what is stored."""
    return image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
