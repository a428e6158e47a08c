"""The engines the studio offers, each a thin adapter over one function of :mod:`brushwork.api`.

Each engine's form is drawn from its settings class (``brushwork.api.SETTINGS``), the same controls the CLI
renders as flags: parameters travel under the Python API's keyword names, the form shows the CLI's option
names, and a job's parameters are read and checked by the settings' own ``validate`` before it is queued,
so the browser, the REST API, the CLI and Python accept the same things with the same words.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from brushwork import api
from brushwork.errors import BrushworkError
from brushwork.studio.config import Limits

#: progress(fraction 0..1, make_preview or None) -> None; it raises to stop the job.
Progress = Callable[[float, Callable[[], Image.Image] | None], None]


@dataclass
class RunContext:
    """What a worker hands an engine besides the job's inputs and params."""

    progress: Progress
    device: str
    max_pixels: int
    #: A path in outputs/ for a file the engine writes itself (a video), by suffix: named by job and attempt.
    output: Callable[[str], Path]
    #: The job's own folder: intermediates to resume from if this attempt dies (kept until the job ends).
    workdir: Path
    #: Seconds between intermediates (0: none).
    intermediate_seconds: float = 0.0
    #: How a file the engine writes itself (a video) is protected; None on a remote worker, which holds no
    #: keys: the server protects what it uploads (``remote.py``). Images are protected by whoever saves them.
    protection: Any = "default"
    #: install_model(checkpoint, name) -> the model to paint with: a trained model into DATA/models (a remote
    #: worker keeps it to upload with its results: the server installs it as it publishes them).
    install_model: Callable[[Path, str], Path] | None = None
    #: checkpointed(checkpoint): each new checkpoint a trainer saved in ``workdir`` (a remote worker uploads it,
    #: so that an attempt on another host resumes from it; a local worker needs nothing: it is in DATA/jobs).
    checkpointed: Callable[[Path], None] | None = None


@dataclass
class Written:
    """A result the engine wrote itself (a video, with its record inside), and a still to show for it."""

    path: Path
    record: Any
    poster: Path | None = None


@dataclass
class Inputs:
    """A job's resolved input files."""

    content: Path | None = None
    styles: list[Path] = field(default_factory=list)
    model: Path | None = None
    frames: int | None = None  # a clip's frame count, as counted when it was uploaded
    masks: list[Path] = field(default_factory=list)  # style masks: one per style, or one for two styles
    contents: list[Path] = field(default_factory=list)  # a training job's photos (``content`` is the first)
    new_model: str | None = None  # the name of the model a training job makes


#: What an engine's run returns: images (the worker saves them with their records) or files it wrote.
Results = list[Image.Image | Written]


@dataclass
class Engine:
    name: str
    label: str
    needs_content: bool
    styles: tuple[int, int]  # how many style images: (min, max)
    needs_model: bool
    settings: type  # the engine's settings class: its controls are the form, its validate the check
    run: Callable[[Inputs, dict, RunContext], Results]
    available: Callable[[], bool] = lambda: True
    content_kind: str = "image"  # or "video": the content upload is a clip
    #: Engines whose models this one applies (the video engine: fast and AdaIN models).
    model_engines: tuple[str, ...] = ()
    #: Style masks (painted in the page or uploaded) send each style to its region.
    takes_masks: bool = False
    #: Several jobs with the same params, model and styles at once: inputs of each -> results of each.
    run_batch: Callable[[list[Inputs], dict, str, int], list[Results]] | None = None
    #: How many content images it takes at most (a trainer: the photos it learns from).
    contents: int = 1
    #: It makes a model, named by the job's ``model`` field, instead of applying one.
    makes_model: bool = False

    def controls(self) -> list[api.Control]:
        return api.controls(self.settings)

    def describe(self) -> dict:
        """The engine as the page and GET /api/engines show it."""
        return {"name": self.name, "label": self.label, "needs_content": self.needs_content,
                "styles": list(self.styles), "needs_model": self.needs_model, "content_kind": self.content_kind,
                "model_engines": list(self.model_engines or (self.name,)), "takes_masks": self.takes_masks,
                "contents": self.contents, "makes_model": self.makes_model,
                "controls": [c.to_dict() for c in self.controls()]}  # fmt: skip

    @property
    def schema_name(self) -> str:
        return self.name.title().replace("-", "") + "Settings"

    def check(self, params: Any, n_styles: int, has_content: bool, has_model: bool, limits: Limits) -> dict:
        """Params as the API takes them, after the API's own validation; BrushworkError if not."""
        if not isinstance(params, dict):
            raise BrushworkError("params must be a JSON object of the Python API's keyword arguments")
        if self.needs_content and not has_content:
            raise BrushworkError(f"{self.name}: a content image is required")
        lo, hi = self.styles
        if not lo <= n_styles <= hi:
            wanted = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise BrushworkError(f"{self.name}: takes {wanted} style images, got {n_styles}")
        if self.needs_model and not has_model:
            raise BrushworkError(f"{self.name}: a model is required (see GET /api/models)")
        controls = {c.name: c for c in self.controls()}
        unknown = sorted(set(params) - set(controls))
        if unknown:
            raise BrushworkError(f"{self.name}: unknown parameter {unknown[0]!r}; known: {', '.join(sorted(controls))}")
        missing = [name for name, c in controls.items() if c.required and name not in params]
        if missing:
            raise BrushworkError(f"{self.name}: {missing[0]} is required")
        clean = {name: controls[name].coerce(value) for name, value in params.items()}
        _check_limits(clean, limits)
        self.settings.from_values(clean).validate(n_styles)
        return clean


def _check_limits(params: dict, limits: Limits) -> None:
    sizes = [params.get("image_size"), params.get("style_size"), *(params.get("scales") or [])]
    if any(s is not None and s > limits.max_image_size for s in sizes):
        raise BrushworkError(f"image size above this studio's limit of {limits.max_image_size} px")
    for name in ("iterations", "fine_iterations", "steps"):
        if (params.get(name) or 0) > limits.max_iterations:
            raise BrushworkError(f"{name} above this studio's limit of {limits.max_iterations}")
    if len(params.get("seeds") or []) > limits.max_seeds:
        raise BrushworkError(f"at most {limits.max_seeds} seeds per job")
    if (params.get("max_frames") or 0) > limits.video_frames:
        raise BrushworkError(f"max_frames above this studio's limit of {limits.video_frames}")


# ---------------------------------------------------------------------------------------------
# stylize: Gatys et al.'s optimisation (brushwork.api.stylize), with live previews.


def _backbone(name: str, pooling: str):
    """A worker keeps its feature network between jobs: loading it costs more than a small job."""
    return api.cached_backbone(name, None, "torchvision", pooling)


def _stylize_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    settings = api.SETTINGS["stylize"].from_values(params)
    net = _backbone(settings.backbone, settings.pooling)
    # A job whose earlier attempt died continues from that attempt's last intermediate (the record says so).
    start_step, init_image = api.resume_point(list(ctx.workdir.glob("step-*.png")), inputs.content, settings)
    kept = {"at": time.monotonic()}

    def on_step(step) -> None:
        ctx.progress(step.step / max(1, step.total), lambda: api.step_image(step))
        due = ctx.intermediate_seconds and time.monotonic() - kept["at"] >= ctx.intermediate_seconds
        if due and step.step < step.total:
            _keep_intermediate(ctx.workdir, inputs, settings, step)
            kept["at"] = time.monotonic()

    values = {k: v for k, v in settings.values().items() if k != "backbone"}
    image = api.stylize(inputs.content, inputs.styles, backbone=net, device=ctx.device, max_pixels=ctx.max_pixels,
                        on_step=on_step, init_image=init_image, start_step=start_step,
                        style_masks=inputs.masks or None, **values)  # fmt: skip
    return [image]


def _keep_intermediate(workdir: Path, inputs: Inputs, settings, step) -> None:
    """The picture so far, replacing the previous one: what a later attempt resumes from."""
    workdir.mkdir(parents=True, exist_ok=True)
    earlier = list(workdir.glob("step-*.png"))
    path = api.keep_intermediate(workdir / f"{api.step_name(step.step)}.png", inputs.content, inputs.styles, step,
                                 settings)  # fmt: skip
    for old in earlier:
        if old != path:
            old.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The model engines: one API call each.


def _loaded(path: Path, device: str, backbone: str = "auto"):
    """A worker keeps a model between jobs (by file and modification time, in an LRU bounded by memory):
    loading it costs more than applying it to a small picture."""
    return api.cached_model(path, device=device, backbone=backbone)


def _fast_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    return [api.fast_apply(_loaded(inputs.model, ctx.device), inputs.content, device=ctx.device,
                           max_pixels=ctx.max_pixels, **params)]  # fmt: skip


def _fast_batch(inputs: list[Inputs], params: dict, device: str, max_pixels: int) -> list[Results]:
    """Jobs with the same model and settings: one forward pass for the pictures of one size."""
    images = api.fast_apply_many(_loaded(inputs[0].model, device), [i.content for i in inputs], device=device,
                                 max_pixels=max_pixels, **params)  # fmt: skip
    return [[image] for image in images]


def _adain_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    model = _loaded(inputs.model, ctx.device, params.get("backbone", "auto"))
    return [api.adain_apply(model, inputs.content, inputs.styles, device=ctx.device, max_pixels=ctx.max_pixels,
                            **params)]  # fmt: skip


def _adain_batch(inputs: list[Inputs], params: dict, device: str, max_pixels: int) -> list[Results]:
    """Jobs with the same model, styles and settings: one forward pass for the photos of one size."""
    model = _loaded(inputs[0].model, device, params.get("backbone", "auto"))
    images = api.adain_apply_many(model, [i.content for i in inputs], inputs[0].styles, device=device,
                                  max_pixels=max_pixels, **params)  # fmt: skip
    return [[image] for image in images]


def _gan_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    return list(api.gan_sample(inputs.model, device=ctx.device, **params))


# ---------------------------------------------------------------------------------------------
# video: a fast or AdaIN model on every frame of a clip (brushwork.api.stylize_video)


def _video_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    target = ctx.output(".mp4")
    frames: dict[str, Image.Image] = {}

    def on_stylised(frame: Image.Image) -> None:
        frames.setdefault("first", frame)
        frames["latest"] = frame

    def on_frame(done: int, total: int) -> None:
        total = total or inputs.frames or 0  # some containers do not say how many frames they hold
        ctx.progress(done / total if total else 0.0, (lambda: frames["latest"]) if "latest" in frames else None)

    report = api.stylize_video(inputs.content, target, model=inputs.model, styles=inputs.styles or None,
                               device=ctx.device, max_pixels=ctx.max_pixels, on_frame=on_frame,
                               on_stylised=on_stylised, protection=ctx.protection, **params)  # fmt: skip
    # Unprotected (a remote worker's), the clip has no work ID to mark its poster with: the server makes it.
    poster = None
    if "first" in frames and ctx.protection is not None:
        poster = clip_poster(frames["first"], target, report.record)
    return [Written(target, report.record, poster)]


def clip_poster(frame: Image.Image, clip: Path, record) -> Path:
    """The still the gallery shows before ``clip`` plays: a copy of the clip's record, marked with the
    clip's own work ID (not a work of its own: not registered)."""
    from brushwork.protect import Protection

    clip_id = (record.extra.get("protection") or {}).get("work_id")
    marking = Protection(register=False, work_id=clip_id) if clip_id else None
    return api.save(frame, clip.with_suffix(".poster.jpg"), copy.deepcopy(record), protection=marking)


# ---------------------------------------------------------------------------------------------
# fast-train, adain-train: a model trained in the studio (brushwork.api.fast_train / adain_train), put in
# DATA/models under the name the job gives, and shown in the gallery by a picture it painted.


def _fast_train_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    return _train_model("fast-train", inputs, params, ctx)


def _adain_train_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    return _train_model("adain-train", inputs, params, ctx)


#: The trainer's checkpoint in a training job's folder (with its .json): what a later attempt resumes from.
TRAINING_CHECKPOINT = "model.safetensors"


def _train_model(engine: str, inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    if ctx.install_model is None:
        raise BrushworkError(f"{engine}: this worker has nowhere to keep a trained model")
    settings = api.SETTINGS[engine].from_values(params)
    # The checkpoint lives in the job's folder: an attempt after a killed one resumes from it.
    checkpoint = ctx.workdir / TRAINING_CHECKPOINT
    photos = _folder(ctx.workdir / "photos", inputs.contents)
    shown = {"at": None}
    # The checkpoint this attempt resumes from (if any) came from where it would be handed back to.
    handed = {"at": checkpoint.stat().st_mtime_ns if checkpoint.exists() else None}

    def preview() -> Image.Image:
        shown["at"] = checkpoint.stat().st_mtime_ns
        return _painted_by(engine, checkpoint, inputs, settings, ctx)

    def on_step(step) -> None:
        # A trainer saves its checkpoint after the step's report: a new one is seen at the next step.
        if ctx.checkpointed is not None and checkpoint.exists() and checkpoint.stat().st_mtime_ns != handed["at"]:
            handed["at"] = checkpoint.stat().st_mtime_ns
            ctx.checkpointed(checkpoint)
        fresh = checkpoint.exists() and checkpoint.stat().st_mtime_ns != shown["at"]
        ctx.progress(step.step / max(1, step.total), preview if fresh else None)  # the latest checkpoint's work

    if _steps_done(checkpoint) < settings.steps:  # an attempt killed after the last step has nothing to train
        options = {"resume": checkpoint.is_file(), "device": ctx.device, "on_step": on_step, **settings.values()}
        if engine == "fast-train":
            api.fast_train(inputs.styles[0], photos, checkpoint, max_pixels=ctx.max_pixels, **options)
        else:
            api.adain_train(photos, _folder(ctx.workdir / "styles", inputs.styles), checkpoint, **options)
    ctx.progress(1.0, None)  # cancelled in the last step? then no model is installed
    model = ctx.install_model(checkpoint, inputs.new_model)
    picture = _painted_by(engine, model, inputs, settings, ctx)
    trained = {"engine": engine, "model": inputs.new_model, "settings": settings.values(),
               "photos": len(inputs.contents)}  # fmt: skip
    api.record_of(picture).extra["trained"] = trained
    return [picture]


def _folder(folder: Path, images: list[Path]) -> Path:
    """The trainers read folders: the job's images, copied into one of the job's own."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for n, image in enumerate(images):
        target = folder / f"{n:03d}{image.suffix}"
        if not target.exists():
            shutil.copyfile(image, target)
    return folder


def _steps_done(checkpoint: Path) -> int:
    """The steps a checkpoint in the job's folder holds (0: none yet)."""
    import json

    try:
        return int(json.loads(checkpoint.with_suffix(".json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _painted_by(engine: str, model_path: Path, inputs: Inputs, settings, ctx: RunContext) -> Image.Image:
    """The first photo painted by the model (as far as it is trained), at about the training crops' size."""
    model = api.load_model(model_path, device=ctx.device)
    size = max(256, settings.image_size)
    if engine == "fast-train":
        return api.fast_apply(model, inputs.contents[0], image_size=size, device=ctx.device, max_pixels=ctx.max_pixels)
    return api.adain_apply(model, inputs.contents[0], inputs.styles[0], image_size=size, device=ctx.device,
                           max_pixels=ctx.max_pixels)  # fmt: skip


def _video_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("av") is not None


#: The most photos (and, for AdaIN, paintings) one training job takes: library picks and uploads.
MAX_TRAINING_PHOTOS = 64

ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("stylize", "Optimisation (Gatys)", True, (1, 8), False, api.SETTINGS["stylize"], _stylize_run,
               takes_masks=True),
        Engine("fast", "Feed-forward model", True, (0, 0), True, api.SETTINGS["fast"], _fast_run,
               run_batch=_fast_batch),
        Engine("adain", "AdaIN (any style)", True, (1, 8), True, api.SETTINGS["adain"], _adain_run,
               run_batch=_adain_batch),
        Engine("gan-sample", "GAN samples", False, (0, 0), True, api.SETTINGS["gan-sample"], _gan_run),
        Engine("video", "Video (a model on every frame)", True, (0, 8), True, api.SETTINGS["video"], _video_run,
               available=_video_available, content_kind="video", model_engines=("fast", "adain")),
        Engine("fast-train", "Train a feed-forward model (one style)", True, (1, 1), False,
               api.SETTINGS["fast-train"], _fast_train_run, contents=MAX_TRAINING_PHOTOS, makes_model=True),
        Engine("adain-train", "Train an AdaIN model (any style)", True, (1, MAX_TRAINING_PHOTOS), False,
               api.SETTINGS["adain-train"], _adain_train_run, contents=MAX_TRAINING_PHOTOS, makes_model=True),
    )
}  # fmt: skip


def batchable_engines() -> tuple[str, ...]:
    return tuple(name for name, e in ENGINES.items() if e.run_batch is not None)


def get_engine(name: str) -> Engine:
    engine = ENGINES.get(name)
    if engine is None or not engine.available():
        names = ", ".join(n for n, e in ENGINES.items() if e.available())
        raise BrushworkError(f"unknown engine {str(name)[:40]!r}; this studio has: {names}")
    return engine


def available_engines() -> list[Engine]:
    return [e for e in ENGINES.values() if e.available()]
