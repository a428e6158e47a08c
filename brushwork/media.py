"""Image and video-frame input and output: every file that comes in is checked, every file that goes out is
atomic.

Loading copes with EXIF rotation, CMYK, 16-bit, palette, alpha and greyscale, and refuses
decompression bombs. Outputs are written by ``records.write_image`` (with their record) through
the one exit, ``output.save_output``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, readable_file

if TYPE_CHECKING:
    import torch

#: Default cap on the pixels of an input image (about 16k x 16k); configurable per call.
DEFAULT_MAX_PIXELS = 16384 * 16384

# A truncated file must fail, not come back half grey.
Image.LOAD_TRUNCATED_IMAGES = False

#: Where an image made inside :func:`high_precision` keeps its 16-bit pixels (uint16, H x W x 3).
HIGH_PRECISION_KEY = "brushwork_uint16"
_high_precision: ContextVar[bool] = ContextVar("brushwork_high_precision", default=False)


@contextmanager
def high_precision() -> Iterator[None]:
    """Images made inside keep their pixels at 16 bits as well (for a 16-bit TIFF print), beside the
    8-bit picture: twice the memory of the 8-bit image, so only when asked."""
    token = _high_precision.set(True)
    try:
        yield
    finally:
        _high_precision.reset(token)


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an 8-bit RGB image, upright, or raise :class:`BrushworkError`."""
    from brushwork.files import readable_file

    if not (isinstance(max_pixels, int) and max_pixels >= 1):
        raise BrushworkError(f"max pixels must be a whole number >= 1, not {max_pixels}")
    path = readable_file(path)
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x the limit; treat that as over the limit too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BrushworkError(
            f"{path}: image too large (more than {max_pixels:,} pixels); "
            "raise the limit with --max-pixels if you trust this file"
        ) from exc
    except UnidentifiedImageError as exc:
        raise BrushworkError(f"{path}: not an image file brushwork can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BrushworkError(f"{path}: unreadable or corrupt image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale the real range down to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        # Transparent areas become white, as they look in a viewer, instead of their hidden colour.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def carry_high_precision(original: Image.Image, edited: Image.Image) -> None:
    """Give ``edited`` (e.g. ``original`` with a watermark added at 8 bits) the 16-bit pixels of
    ``original`` plus the edit, so a 16-bit print keeps both the precision and the edit."""
    wide = original.info.get(HIGH_PRECISION_KEY)
    if wide is None or HIGH_PRECISION_KEY in edited.info or edited.size != original.size:
        return
    delta = np.asarray(edited.convert("RGB"), np.int32) - np.asarray(original.convert("RGB"), np.int32)
    edited.info[HIGH_PRECISION_KEY] = np.clip(wide.astype(np.int32) + delta * 257, 0, 65535).astype(np.uint16)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor (1, 3, H, W) in 0..1."""
    import torch  # here, not at the top: verify and info read images without loading torch (#21)

    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in 0..1 -> PIL RGB."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    values = tensor.detach().float().clamp(0, 1)
    image = Image.fromarray(values.mul(255).round().byte().permute(1, 2, 0).cpu().numpy(), "RGB")
    if _high_precision.get():
        wide = values.mul(65535).round().int().permute(1, 2, 0).cpu().numpy().astype(np.uint16)
        image.info[HIGH_PRECISION_KEY] = wide
    return image


def paint_by_size(photos: Sequence[Image.Image], paint: Callable[[torch.Tensor], torch.Tensor],
                  device: torch.device | str) -> list[Image.Image]:  # fmt: skip
    """``paint`` (a batch of photos as a tensor -> the painted batch) on ``photos``, those of one size as one
    batch (one forward pass: what a GPU wants); the results in the photos' order."""
    import torch

    by_size: dict[tuple[int, int], list[int]] = {}
    for n, photo in enumerate(photos):
        by_size.setdefault(photo.size, []).append(n)
    results: list[Image.Image | None] = [None] * len(photos)
    for batch in by_size.values():
        painted = paint(torch.cat([image_to_tensor(photos[n]) for n in batch]).to(device))
        for k, n in enumerate(batch):
            results[n] = tensor_to_image(painted[k : k + 1])
    return results


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Scale so the longer side is ``long_side`` pixels, keeping the aspect ratio."""
    w, h = img.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.LANCZOS)


def video_stream(container, path: str | os.PathLike):
    """``container``'s first video stream, or one clear line: it has none, or one PyAV cannot decode (an
    unknown codec leaves the stream without a codec context)."""
    if not container.streams.video:
        raise BrushworkError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise BrushworkError(f"{path}: its video codec is not one brushwork can decode")
    return stream


def require_av():
    """PyAV (video and audio decoding), or one clear error saying how to install it."""
    try:
        import av
    except ImportError as exc:
        raise BrushworkError("video needs PyAV: pip install 'brushwork[video]'") from exc
    return av


# ---------------------------------------------------------------------------------------------
# Video frames: in and out, and the motion between them (the video engine steadies along it, the
# judge measures flicker along it)

#: x264's constant-rate-factor scale (8-bit): 0 is lossless, 51 the worst.
CRF_RANGE = (0, 51)


def check_crf(crf: int) -> None:
    if not (isinstance(crf, int) and CRF_RANGE[0] <= crf <= CRF_RANGE[1]):
        raise BrushworkError(f"crf must be a whole number {CRF_RANGE[0]}..{CRF_RANGE[1]}, not {crf}")


def _h264_stream(out, rate, width: int, height: int, crf: int):
    """An H.264 stream in ``out``. yuv420p needs even sides: an odd frame is padded by one pixel."""
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height = width + width % 2, height + height % 2
    stream.pix_fmt, stream.options = "yuv420p", {"crf": str(crf)}
    return stream


def _even_sided(image: Image.Image, stream) -> Image.Image:
    """``image`` on a canvas of the stream's (even) size: padded by a pixel where a side is odd."""
    if image.size == (stream.width, stream.height) and image.mode == "RGB":
        return image
    canvas = Image.new("RGB", (stream.width, stream.height))
    canvas.paste(image.convert("RGB"))
    return canvas


def write_frames(frames: list[Image.Image], output: str | os.PathLike, fps: int = 25, crf: int = 18, comment: str = "",
                 mark_frame: Callable[[Image.Image], Image.Image] | None = None) -> None:  # fmt: skip
    """Images (all one size) as an H.264 MP4, written atomically; ``comment`` goes into its metadata and
    ``mark_frame`` (the watermark) touches every frame last."""
    av = require_av()
    check_crf(crf)
    if not frames:
        raise BrushworkError("no frames to write")
    width, height = frames[0].size

    def write(tmp: str) -> None:
        with av.open(tmp, "w", format="mp4") as out:
            if comment:
                out.metadata["comment"] = comment
            stream = _h264_stream(out, fps, width, height, crf)
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_image(_even_sided(mark_frame(image) if mark_frame else image, stream))
                frame.pts, frame.time_base = i, Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))

    atomic_write(output, write)


def first_frame(path: str | os.PathLike) -> Image.Image:
    """The first frame of a video (its first video stream), as an RGB image."""
    av = require_av()
    path = readable_file(path, "video file")
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video_stream(container, path)):
                return frame.to_image()
    except av.FFmpegError as exc:
        raise BrushworkError(f"{path}: not a video brushwork can read ({exc})") from exc
    raise BrushworkError("the video has no frames")


def read_frames(path: str | os.PathLike) -> list[Image.Image]:
    """All frames of a video as images (for tests and measurements)."""
    av = require_av()
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


#: Source change (mean absolute difference, 0..1) at which the previous frame's weight has halved.
MOTION_SCALE = 0.04


def flow_estimator():
    try:
        import cv2
    except ImportError as exc:
        raise BrushworkError("flow stabilisation needs OpenCV: pip install 'brushwork[video]'") from exc
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def warp_back(flow, source: torch.Tensor, *previous: torch.Tensor) -> list[torch.Tensor]:
    """Warp (1, 3, H, W) frames of the previous time step onto the current one along the source's flow."""
    import cv2
    import numpy as np
    import torch

    if min(source.shape[-2:]) < 16:  # too small for DIS flow; nothing to warp there anyway
        return list(previous)

    def grey(x: torch.Tensor) -> np.ndarray:
        return (x[0].mean(0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    # For each current pixel, where it was in the previous frame.
    motion = flow.calc(grey(source), grey(previous[0]), None)
    h, w = motion.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = grid_x + motion[..., 0], grid_y + motion[..., 1]
    warped = []
    for frame in previous:
        hwc = frame[0].permute(1, 2, 0).contiguous().numpy()
        moved = cv2.remap(hwc, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped.append(torch.from_numpy(moved).permute(2, 0, 1).unsqueeze(0))
    return warped


class FlickerMeter:
    def __init__(self) -> None:
        self.src_change = 0.0
        self.out_change = 0.0
        self._prev: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, source: torch.Tensor, output: torch.Tensor) -> None:
        if self._prev is not None and self._prev[0].shape == source.shape and self._prev[1].shape == output.shape:
            self.src_change += (source - self._prev[0]).abs().mean().item()
            self.out_change += (output - self._prev[1]).abs().mean().item()
        self._prev = (source, output)

    @property
    def ratio(self) -> float:
        return self.out_change / self.src_change if self.src_change > 0 else float("nan")
