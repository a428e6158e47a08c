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
from brushwork.media import (  # noqa: F401 - frame I/O and motion, importable from here for older code
    CRF_RANGE,
    MOTION_SCALE,
    FlickerMeter,
    _even_sided,
    _h264_stream,
    check_crf,
    first_frame,
    flow_estimator,
    image_to_tensor,
    read_frames,
    require_av,
    tensor_to_image,
    video_stream,
    warp_back,
    write_frames,
)
from brushwork.style.audio import AudioDrive


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
