"""Video in, stable stylised video out, with any per-frame engine; the audio is copied untouched.

Stabilisation: the previous stylised frame is warped along the optical flow of the *source*
(OpenCV's DIS flow, current frame -> previous frame) and blended into the new one wherever the
warp explains the source (the warped previous source matches the current one). Moving areas stay
steady; occluded or newly revealed areas, where the warp fails, take the new frame as it is, so
nothing smears. With ``flow=False`` the previous frame is blended unwarped where the source did
not change. Flicker is measured as the mean frame-to-frame change of the output divided by that of
the source: 1.0 means the stylisation adds no flicker.

Needs the ``video`` extra (PyAV with its own FFmpeg, OpenCV for the flow): ``pip install brushwork[video]``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, readable_file
from brushwork.media import image_to_tensor, require_av, tensor_to_image, video_stream
from brushwork.style.audio import AudioDrive

#: Source change (mean absolute difference, 0..1) at which the previous frame's weight has halved.
MOTION_SCALE = 0.04


@dataclass
class VideoReport:
    frames: int
    audio_streams: int
    flicker: float  # output change / source change, frame to frame
    seconds: float
    notes: list[str] = field(default_factory=list)
    audio_reactive: dict | None = None  # AudioDrive.describe() when the sound drove the style


class Stabiliser:
    """Blend each stylised frame with the previous output, carried along the source's motion."""

    def __init__(self, strength: float, flow: bool = True):
        if not 0 <= strength < 1:
            raise BrushworkError("stabilisation must be in 0..1 (0 = off; 1 would freeze the picture)")
        self.strength = strength
        self.flow = flow_estimator() if flow and strength else None
        self.prev_source: torch.Tensor | None = None
        self.prev_output: torch.Tensor | None = None

    def __call__(self, source: torch.Tensor, stylised: torch.Tensor) -> torch.Tensor:
        out = stylised
        if self.strength and self.prev_source is not None and self.prev_output.shape == stylised.shape:
            prev_source, prev_output = self.prev_source, self.prev_output
            if self.flow is not None:
                prev_source, prev_output = warp_back(self.flow, source, prev_source, prev_output)
            # What the warp (or standing still) fails to explain counts as change: there the new frame wins.
            change = (source - prev_source).abs().mean(1, keepdim=True)
            keep = self.strength * torch.exp2(-change / MOTION_SCALE)
            out = keep * prev_output + (1 - keep) * stylised
        self.prev_source, self.prev_output = source, out
        return out


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


def stylize_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    stylise: Callable[[Image.Image], Image.Image],
    stabilise: float = 0.5,
    flow: bool = True,
    max_frames: int | None = None,
    crf: int = 18,
    on_frame: Callable[[int, int], None] | None = None,
    drive: AudioDrive | None = None,
    audio: str | os.PathLike | None = None,
    comment: str = "",
    mark_frame: Callable[[Image.Image], Image.Image] | None = None,
) -> VideoReport:
    """Stylise every frame of ``source`` with ``stylise`` into ``output`` (.mp4, H.264), copying audio;
    ``comment`` (the run's record) goes into the file's metadata; ``mark_frame`` (the watermark) is the
    last touch on every output frame, after stabilisation, before encoding.

    With ``drive`` (audio-reactive), ``stylise`` is called as ``stylise(picture, FrameSettings)`` with the
    settings the music asks for at that frame's time. With ``audio``, that file's sound replaces the
    clip's (encoded as AAC, cut to the video's length)."""
    av = require_av()
    check_crf(crf)
    source, output = readable_file(source, "video file"), Path(output)
    try:
        container = av.open(str(source))
    except av.FFmpegError as exc:
        raise BrushworkError(f"{source}: not a video brushwork can read ({exc})") from exc
    with container:
        v_in = video_stream(container, source)
        report: VideoReport | None = None

        def write(tmp: str) -> None:
            nonlocal report
            try:
                report = _transcode(av, container, v_in, tmp, stylise, Stabiliser(stabilise, flow), max_frames, crf,
                                    on_frame, comment, drive, audio, mark_frame)  # fmt: skip
            except av.FFmpegError as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise
                raise BrushworkError(f"{source}: the video could not be decoded ({exc})") from exc

        atomic_write(output, write)
    assert report is not None
    return report


def _transcode(av, container, v_in, target, stylise, stabiliser, max_frames, crf, on_frame, comment="", drive=None,
               audio=None, mark_frame=None) -> VideoReport:  # fmt: skip
    import time

    start = time.perf_counter()
    v_in.thread_type = "AUTO"
    audio_in = [] if audio is not None else list(container.streams.audio)
    total = v_in.frames or 0
    rate = v_in.average_rate or v_in.guessed_rate or Fraction(25)
    if drive is not None:
        length = float(v_in.duration * v_in.time_base) if v_in.duration else (total or 0) / float(rate)
        drive.check_length(length if max_frames is None else min(length, max_frames / float(rate)))
    meter = FlickerMeter()
    frames = 0
    with av.open(target, "w", format="mp4") as out:
        if comment:
            out.metadata["comment"] = comment
        # Every stream must exist before the first packet is written (audio may come first).
        width, height = v_in.codec_context.width, v_in.codec_context.height
        v_out = _h264_stream(out, rate, width, height, crf)
        audio_out = {s.index: out.add_stream_from_template(s) for s in audio_in}
        new_audio = _audio_stream(av, out, audio) if audio is not None else None
        for packet in container.demux(v_in, *audio_in):
            if packet.stream.index in audio_out:
                if packet.dts is not None and (max_frames is None or frames < max_frames):
                    packet.stream = audio_out[packet.stream.index]
                    out.mux(packet)
                continue
            for frame in packet.decode():
                if max_frames is not None and frames >= max_frames:
                    break
                picture = frame.to_image()
                src = image_to_tensor(picture)
                if drive is None:
                    result = image_to_tensor(stylise(picture))
                else:
                    seconds = float(frame.time) if frame.time is not None else frames / float(rate)
                    result = image_to_tensor(stylise(picture, drive.at(seconds)))
                if result.shape != src.shape or picture.size != (width, height):
                    raise BrushworkError("frame sizes change within the video, or the engine resized a frame")
                result = stabiliser(src, result)
                meter.add(src, result)
                image = tensor_to_image(result)
                if mark_frame is not None:
                    image = mark_frame(image)
                new = av.VideoFrame.from_image(_even_sided(image, v_out))
                new.pts, new.time_base = frame.pts, frame.time_base
                out.mux(v_out.encode(new))
                frames += 1
                if on_frame is not None:
                    on_frame(frames, max_frames or total)
        if frames == 0:
            raise BrushworkError("the video has no frames")
        out.mux(v_out.encode(None))
        if new_audio is not None:
            _encode_audio(av, out, new_audio, audio, frames / float(rate))
    return VideoReport(
        frames,
        len(audio_in) + (new_audio is not None),
        meter.ratio,
        time.perf_counter() - start,
        list(drive.notes) if drive is not None else [],
        drive.describe() if drive is not None else None,
    )


def _audio_stream(av, out, path):
    """An AAC stream in ``out`` for the sound of ``path`` (its rate, stereo or mono as it is)."""
    with av.open(str(path)) as src:
        if not src.streams.audio:
            raise BrushworkError(f"{path}: has no audio stream")
        ctx = src.streams.audio[0].codec_context
        rate, channels = ctx.sample_rate or 44100, ctx.channels or 2
    stream = out.add_stream("aac", rate=rate)
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


def _encode_audio(av, out, stream, path, seconds: float) -> None:
    """Decode ``path``'s first audio stream and encode its first ``seconds`` into ``stream``."""
    resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
    written, limit = 0, int(seconds * stream.rate)
    with av.open(str(path)) as src:
        for frame in src.decode(audio=0):
            for piece in resampler.resample(frame):
                if written >= limit:
                    break
                piece.pts, written = written, written + piece.samples
                for packet in stream.encode(piece):
                    out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def at_stroke_scale(picture: Image.Image, scale: float, run: Callable[[Image.Image], Image.Image],
                    min_side: int = 16) -> Image.Image:  # fmt: skip
    """``run`` on ``picture`` shrunk by ``scale`` and the result brought back to its size: the strokes of a
    fixed-size engine come out ``scale`` times bigger (smaller below 1)."""
    if abs(scale - 1) < 0.01:
        return run(picture)
    w, h = picture.size
    small = picture.resize((max(min_side, round(w / scale)), max(min_side, round(h / scale))), Image.Resampling.LANCZOS)
    return run(small).resize((w, h), Image.Resampling.BICUBIC)


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
