"""Moving outputs (MP4, GIF): every frame carries the clip's work ID; reading takes the most common ID.

A clip is one work: one work ID, one registry entry, one C2PA manifest over the whole file. Each
frame is marked as a still is (:func:`watermark.embed_hinted`, starting from the strength the
previous frame needed, so most frames cost one encoder and one decoder run), after everything
else touched it (stabilisation, padding) and before it is encoded. Reading samples a few frames
spread over the clip and reports the ID that most of them carry, if at least
:data:`MIN_AGREEING_FRAMES` agree: a single frame of an unmarked clip passes the checksum by
chance about once in a thousand readings, two frames naming the same ID by chance practically never.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.media import DEFAULT_MAX_PIXELS, require_av, video_stream
from brushwork.output import CLIP_SUFFIXES, gif_frame
from brushwork.protect import watermark

#: Frames read to find a clip's mark (spread evenly, first and last included).
FRAMES_READ = 7
#: Frames that must name the same ID before it is reported (fewer when the clip is shorter).
MIN_AGREEING_FRAMES = 2
#: A clip's frames search for their strength afresh this often (else they start from the last one's).
RESEARCH_EVERY = 8


def is_clip(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in CLIP_SUFFIXES


def as_stored(path: str | os.PathLike) -> Callable[[Image.Image], Image.Image]:
    """What writing a frame into ``path``'s format does to it, for the write-time read-back: a GIF
    quantises it to a palette (exactly as ``output.gif_frame`` does); H.264 is stood in for by JPEG 90
    with 4:2:0 chroma. Checked only before compression, 16 of 24 frames of 160x128 clips still read
    after H.264 at CRF 18; checked after this stand-in, 24 of 24 (``benchmarks/clip_watermark.py``)."""
    return _palette_round_trip if Path(path).suffix.lower() == ".gif" else _jpeg_round_trip


def _palette_round_trip(image: Image.Image) -> Image.Image:
    return gif_frame(image).convert("RGB")


def _jpeg_round_trip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90, subsampling=2)  # 2 = 4:2:0, as yuv420p
    return Image.open(buffer).convert("RGB")


@dataclass
class ClipMarker:
    """Marks the frames of one clip with ``work_id``, counting those whose payload reads back from the
    frame as ``survive`` says the format stores it.

    ``first`` and ``first_marked``: the first frame as the ID was chosen on it, and its marked copy,
    handed out again when the writer brings that same frame (no second marking). Each frame starts
    from the strength the previous one needed; every :data:`RESEARCH_EVERY` frames the search starts
    afresh from the gentlest, so that one hard frame does not keep the rest of the clip marked hard.
    """

    work_id: int
    survive: Callable[[Image.Image], Image.Image] | None = None
    first: Image.Image | None = field(default=None, repr=False)
    first_marked: Image.Image | None = field(default=None, repr=False)
    frames: int = 0
    read_back: int = 0
    _hint: watermark.Strength | None = field(default=None, repr=False)
    _first_reading: tuple[bool, watermark.Strength] | None = field(default=None, repr=False)

    def __call__(self, frame: Image.Image) -> Image.Image:
        if self.first is not None and self.frames == 0 and frame.tobytes() == self.first.tobytes():
            marked, ok, self._hint = self.first_marked, *self._first_reading
        else:
            if self.frames % RESEARCH_EVERY == 0:
                self._hint = None
            marked, ok, self._hint = watermark.embed_hinted(frame, self.work_id, self._hint, self.survive)
        self.first = self.first_marked = None
        self.frames += 1
        self.read_back += ok
        return marked

    def starting_with(self, first: Image.Image, marked: Image.Image, ok: bool, strength: watermark.Strength):
        """This marker, knowing that ``first`` marked as ``marked`` (``ok``, at ``strength``)."""
        self.first, self.first_marked, self._first_reading = first, marked, (ok, strength)
        return self


def frame_count(path: str | os.PathLike) -> int:
    """How many frames a clip has (decoding an MP4 through when its header does not say)."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        with _open_gif(path) as gif, _gif_errors(path):
            return gif.n_frames
    av = require_av()
    with _open_video(av, path) as container:
        stream = video_stream(container, path)
        try:
            return stream.frames or sum(1 for _ in container.decode(stream))
        except av.FFmpegError as exc:
            raise BrushworkError(f"{path}: the video could not be decoded ({exc})") from exc


def sample_frames(path: str | os.PathLike, count: int = FRAMES_READ,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:  # fmt: skip
    """Up to ``count`` RGB frames spread evenly over the clip (its middle frame in the middle); fewer, or
    none, where its data is damaged."""
    path = Path(path)
    total = frame_count(path)
    if total == 0:
        raise BrushworkError(f"{path}: has no frames")
    count = min(count, total)
    wanted = sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(count)})
    frames = []
    if path.suffix.lower() == ".gif":
        with _open_gif(path) as gif, _gif_errors(path):
            for index in wanted:
                gif.seek(index)
                frames.append(gif.convert("RGB"))
        return frames
    av = require_av()
    with _open_video(av, path) as container:
        stream = video_stream(container, path)
        if stream.codec_context.width * stream.codec_context.height > max_pixels:
            raise BrushworkError(f"{path}: frames larger than {max_pixels} pixels")
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames.append(frame.to_image().convert("RGB"))
                if len(frames) == len(wanted):
                    break
        except av.FFmpegError:  # damaged data: the frames read before it still count, and may be none
            pass
    return frames


def representative_frame(path: str | os.PathLike) -> Image.Image:
    """The frame that stands for the clip in the registry (its perceptual hash): the middle one."""
    return middle_frame(sample_frames(path, FRAMES_READ), path)


def middle_frame(frames: list[Image.Image], path: str | os.PathLike) -> Image.Image:
    if not frames:
        raise BrushworkError(f"{path}: no frame of the clip could be decoded")
    return frames[len(frames) // 2]


@dataclass
class ClipDetection(watermark.Detection):
    """A clip's reading: the most common checked ID over the frames read, and how many named it."""

    frames_read: int = 0
    frames_agreeing: int = 0
    frame_ids: list[int | None] = field(default_factory=list)


def detect_clip(frames: list[Image.Image], original_size: tuple[int, int] | None = None,
                crop_guesses: tuple[float, ...] = ()) -> ClipDetection:  # fmt: skip
    """The work ID most of ``frames`` carry (see the module's note on :data:`MIN_AGREEING_FRAMES`)."""
    readings = [watermark.detect(frame, original_size, crop_guesses) for frame in frames]
    ids = Counter(r.work_id for r in readings if r.work_id is not None)
    needed = min(MIN_AGREEING_FRAMES, len(frames))
    work_id, agreeing = ids.most_common(1)[0] if ids else (None, 0)
    if agreeing < needed:
        work_id = None
    best = max(
        (r for r in readings if work_id is None or r.work_id == work_id), key=lambda r: r.confidence, default=None
    )
    return ClipDetection(
        work_id,
        best.bits if best else [],
        best.confidence if best else 0.0,
        best.crc_ok if best else False,
        best.scale if best else "none",
        frames_read=len(readings),
        frames_agreeing=agreeing if work_id is not None else 0,
        frame_ids=[r.work_id for r in readings],
    )


@contextmanager
def _gif_errors(path: Path) -> Iterator[None]:
    """Pillow reads a GIF's frames lazily: a truncated or damaged one fails on seek, in any of these ways."""
    try:
        yield
    except (OSError, EOFError, IndexError, ValueError, SyntaxError) as exc:
        raise BrushworkError(f"{path}: not a GIF brushwork can read ({type(exc).__name__}: {exc})") from exc


def _open_gif(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
    except (OSError, Image.DecompressionBombError) as exc:
        raise BrushworkError(f"{path}: not a GIF brushwork can read ({exc})") from exc
    if image.format != "GIF":
        image.close()
        raise BrushworkError(f"{path}: not a GIF")
    return image


def _open_video(av, path: Path):
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise BrushworkError(f"{path}: not a video brushwork can read ({exc})") from exc
    try:
        video_stream(container, path)
    except BrushworkError:
        container.close()
        raise
    return container
