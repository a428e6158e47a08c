"""A clip painted frame by frame with a fast or AdaIN model, steadied against flicker, its sound kept.

    report = run(Inputs("clip.mp4", "starry.safetensors"), Settings(stabilize=0.3), output="out.mp4")

``run`` checks the settings and inputs, loads the model, chooses the per-frame painter (the soundtrack
may drive strength, blend and stroke scale), then writes the MP4 through the one exit for clips: every
frame watermarked with the clip's work ID, the file signed and registered, its record as the comment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import check_output_path
from brushwork.media import CRF_RANGE, DEFAULT_MAX_PIXELS
from brushwork.output import Protection, save_clip
from brushwork.pipelines.common import (
    ADAIN_KIND,
    MAX_SIZE,
    MIN_SIZE,
    ImageSource,
    Model,
    PathLike,
    as_list,
    backbone_setting,
    described,
    load_model,
    open_image,
    paint_any_style,
    preserve_colors_setting,
    strength_setting,
    style_blend_setting,
)
from brushwork.records import Record, describe_input, new_record
from brushwork.saving import DEFAULT_PROTECTION, protection_of
from brushwork.settings import Checked, setting
from brushwork.style.audio import MODES as AUDIO_MODES
from brushwork.style.feedforward import apply_feedforward

ENGINE = "video"
#: A frame shrunk for bigger strokes (audio-reactive scale) keeps at least this side, as the engines need.
MIN_FRAME_SIDE = 64


@dataclass
class Settings(Checked):
    """How the clip is painted and encoded."""

    strength: float = strength_setting("the video")
    stabilize: float = setting(0.5, help="against flicker: 0 = off; higher = steadier", low=0, below=1, basic=True)
    flow: bool = setting(True, help="steady along the optical flow (--no-flow: blend only where the source "
                         "stands still)")  # fmt: skip
    crf: int = setting(18, help="H.264 quality: lower is better and larger", low=CRF_RANGE[0], high=CRF_RANGE[1])
    max_frames: int | None = setting(None, help="stop after N frames", low=1, basic=True)
    style_blend_weights: list[float] | None = style_blend_setting()
    preserve_colors: str = preserve_colors_setting()
    style_size: int | None = setting(None, help="adain: long side of the style images (default: the frame's)",
                                     low=MIN_SIZE, high=MAX_SIZE)  # fmt: skip
    backbone: str = backbone_setting("of an adain model")
    audio_reactive: list[str] | None = setting(
        None, choices=AUDIO_MODES, help="let the soundtrack drive the style per frame: strength (loudness/onsets), "
        "blend (brightness; adain with two styles), scale (tempo -> stroke size)")  # fmt: skip


@dataclass
class Inputs:
    source: PathLike  # the clip (anything FFmpeg reads)
    model: Model | PathLike  # a fast or an AdaIN model
    styles: Sequence[ImageSource] = ()  # for an AdaIN model
    audio: PathLike | None = None  # sound to react to and to put in the output (default: the clip's own)


@dataclass
class VideoReport:
    path: Path
    frames: int
    audio_streams: int
    flicker: float  # output change / source change, frame to frame (1.0 = no flicker added)
    seconds: float
    record: Record
    notes: list[str] = field(default_factory=list)  # e.g. the audio ended before the picture


def run(inputs: Inputs, settings: Settings | None = None, on_progress: Callable[[int, int], None] | None = None,
        *, output: PathLike, force: bool = False, protection: Protection | str | None = DEFAULT_PROTECTION,
        on_stylised: Callable[[Image.Image], None] | None = None, weights: PathLike | None = None,
        weights_layout: str = "torchvision", device: str = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoReport:  # fmt: skip
    """Paint ``inputs.source`` into ``output`` (.mp4); ``on_progress(done, total)`` per frame, ``on_stylised``
    sees each frame as painted (before steadying), e.g. for a live preview."""
    from brushwork.style import video
    from brushwork.style.audio import AudioDrive, FrameSettings

    s = settings or Settings()
    # 1. Check the settings and inputs before any work.
    s.validate()
    output = check_output_path(output, force, ".mp4")
    model = inputs.model if isinstance(inputs.model, Model) else load_model(
        inputs.model, backbone=s.backbone, weights=weights, weights_layout=weights_layout, device=device)  # fmt: skip
    styles = as_list(inputs.styles) if inputs.styles is not None else []
    drive = None
    if s.audio_reactive:
        try:
            drive = AudioDrive.from_file(inputs.audio or inputs.source, list(s.audio_reactive))
        except BrushworkError as exc:
            raise BrushworkError(f"{exc}{'' if inputs.audio else '; give the sound with --audio SONG'}") from exc
        if "blend" in drive.modes and (model.kind != ADAIN_KIND or len(styles) != 2):
            raise BrushworkError("audio-reactive blend mixes two styles: it needs an adain model and two styles")
    if model.kind == ADAIN_KIND and not styles:
        raise BrushworkError("an adain model needs styles (--style)")
    if model.kind != ADAIN_KIND and styles:
        raise BrushworkError(f"{model.path}: a fast model carries its own style; --style is for adain models")

    # 2. The painter of one frame, at the frame's settings (the sound's, when it drives them).
    if model.kind == ADAIN_KIND:
        style_imgs = [open_image(st, max_pixels) for st in styles]

        def frame_at(frame: Image.Image, at: FrameSettings) -> Image.Image:
            mix = s.style_blend_weights if at.blend is None else [1 - at.blend, at.blend]
            return paint_any_style(model, [frame], style_imgs, mix, s.strength * at.strength, None,
                                   s.preserve_colors, None, s.style_size)[0]  # fmt: skip
    else:

        def frame_at(frame: Image.Image, at: FrameSettings) -> Image.Image:
            return apply_feedforward(model.net, [frame], s.strength * at.strength, s.preserve_colors, None,
                                     model.device)[0]  # fmt: skip

    def paint(frame: Image.Image, at: FrameSettings | None = None) -> Image.Image:
        at = at or FrameSettings()
        return video.at_stroke_scale(frame, at.scale, lambda small: frame_at(small, at), MIN_FRAME_SIDE)

    def stylise(frame: Image.Image, at: FrameSettings | None = None) -> Image.Image:
        painted = paint(frame, at)
        if on_stylised is not None:
            on_stylised(painted)
        return painted

    # 3. The record (kept with the keys records made before had), then the clip through the one exit.
    record = new_record(ENGINE, _parameters(s, model, weights, drive), inputs=_inputs(inputs, styles, model),
                        models={"model": model.described}, device=model.device)  # fmt: skip
    guard = protection_of(protection)

    def write(path: Path, comment: str, mark: Callable[[Image.Image], Image.Image] | None) -> video.VideoReport:
        return video.stylize_video(inputs.source, path, stylise, s.stabilize, s.flow, s.max_frames, s.crf,
                                   on_progress, drive, inputs.audio, comment=comment, mark_frame=mark)  # fmt: skip

    # The protection chooses the clip's work ID on its first frame: stylised here, as it will be written.
    first = None
    if guard is not None:
        first = paint(video.first_frame(inputs.source), drive.at(0.0) if drive is not None else None)
    report = save_clip(output, record, first, write, force=force, protection=guard, suffixes=(".mp4",))
    return VideoReport(Path(output), report.frames, report.audio_streams, report.flicker, report.seconds, record,
                       report.notes + _clip_notes(guard))  # fmt: skip


def publish_clip(source: PathLike, output: PathLike, record: Record, *, crf: int = 18, force: bool = False,
                 protection: Protection | str | None = DEFAULT_PROTECTION) -> VideoReport:  # fmt: skip
    """A clip painted elsewhere and written unprotected (by a studio's remote worker, which holds no keys)
    through the same exit as :func:`run`'s: its frames re-encoded as they are, each watermarked with the
    clip's work ID, the file signed and registered, ``record`` as the comment. The sound is kept."""
    from brushwork.style import video

    guard = protection_of(protection)
    output = check_output_path(output, force, ".mp4")

    def write(path: Path, comment: str, mark: Callable[[Image.Image], Image.Image] | None) -> video.VideoReport:
        # Unchanged frames, no steadying: only the mark touches them.
        return video.stylize_video(source, path, lambda frame: frame, 0.0, False, None, crf, comment=comment,
                                   mark_frame=mark)  # fmt: skip

    first = video.first_frame(source) if guard is not None else None
    report = save_clip(output, record, first, write, force=force, protection=guard, suffixes=(".mp4",))
    return VideoReport(Path(output), report.frames, report.audio_streams, report.flicker, report.seconds, record,
                       report.notes + _clip_notes(guard))  # fmt: skip


def _parameters(s: Settings, model: Model, weights: PathLike | None, drive) -> dict:
    parameters = {"model_kind": model.kind, "stabilize": s.stabilize, "flow": s.flow, "crf": s.crf,
                  "max_frames": s.max_frames, "style_blend_weights": s.style_blend_weights, "strength": s.strength,
                  "preserve_colors": s.preserve_colors, "image_size": None, "style_size": s.style_size}  # fmt: skip
    if model.kind == ADAIN_KIND:
        parameters |= {"backbone": model.backbone, "weights": weights}
    if drive is not None:
        parameters["audio_reactive"] = list(drive.modes)
        parameters["audio_analysis"] = drive.describe()
    return parameters


def _inputs(inputs: Inputs, styles: list, model: Model) -> dict:
    found = {"content": describe_input(inputs.source),
             "styles": described(styles) if styles else [model.meta.get("style") or {}]}  # fmt: skip
    if inputs.audio is not None:
        found["audio"] = describe_input(inputs.audio)
    return found


def _clip_notes(protection: Protection | None) -> list[str]:
    """A note when some frames of the clip just written did not carry the whole payload at write time."""
    marker = getattr(protection, "last_clip", None)
    if marker is None or marker.read_back == marker.frames:
        return []
    return [f"the watermark read back from {marker.read_back} of {marker.frames} frames as written "
            "(verify reads the ID most frames carry)"]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The Python API's name (brushwork.api re-exports it)


def stylize_video(source: PathLike, output: PathLike, *, model: Model | PathLike,
                  styles: ImageSource | Sequence[ImageSource] | None = None, strength: float = 1.0,
                  stabilize: float = 0.5, flow: bool = True, crf: int = 18, force: bool = False,
                  on_frame: Callable[[int, int], None] | None = None, max_frames: int | None = None,
                  style_blend_weights: Sequence[float] | None = None, preserve_colors: str = "none",
                  style_size: int | None = None, backbone: str = "auto", weights: PathLike | None = None,
                  weights_layout: str = "torchvision", device: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS,
                  audio_reactive: Sequence[str] | None = None, audio: PathLike | None = None,
                  on_stylised: Callable[[Image.Image], None] | None = None,
                  protection: Protection | str | None = DEFAULT_PROTECTION) -> VideoReport:  # fmt: skip
    """Stylise every frame of ``source`` with a fast or AdaIN ``model`` (AdaIN needs ``styles``) into an
    H.264 ``output`` (.mp4), steadied against flicker, audio copied; the record is the MP4's comment.
    Protected as ``save`` protects an image: every frame watermarked with the clip's one work ID,
    the file signed (C2PA, once keys exist) and registered; ``protection=None`` opts out.

    ``audio_reactive`` lets the soundtrack (``audio``, else the clip's own) drive the style per frame:
    ``strength`` (loudness and onsets), ``blend`` (brightness -> the second of two AdaIN styles), ``scale``
    (tempo -> stroke size); see :mod:`brushwork.style.audio`. ``audio`` also replaces the clip's sound.
    ``on_stylised`` sees each frame as the engine painted it (before steadying), e.g. for a live preview."""
    settings = Settings(
        strength=strength, stabilize=stabilize, flow=flow, crf=crf, max_frames=max_frames,
        style_blend_weights=list(style_blend_weights) if style_blend_weights is not None else None,
        preserve_colors=preserve_colors, style_size=style_size, backbone=backbone,
        audio_reactive=list(audio_reactive) if audio_reactive else None,
    )  # fmt: skip
    return run(Inputs(source, model, styles if styles is not None else (), audio), settings, on_frame, output=output,
               force=force, protection=protection, on_stylised=on_stylised, weights=weights,
               weights_layout=weights_layout, device=device, max_pixels=max_pixels)  # fmt: skip
