"""The engines the studio offers, each a thin adapter over one function of :mod:`brushwork.api`.

Parameters travel under the Python API's keyword names, and the form shows the CLI's option names.
Defaults come from the API itself (the stylize config's fields, the other functions' signatures), and
parameters are checked by the API's own validation before a job is queued, so the browser, the
REST API, the CLI and Python accept the same things. Engines whose API function has not landed
are simply absent (``available``), and appear once it exists.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import lru_cache
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


@dataclass
class Written:
    """A result the engine wrote itself (a video, with its record inside), and a still to show for it."""

    path: Path
    record: Any
    poster: Path | None = None


# Choice lists and help of the keywords of API functions (the stylize config's fields carry their own,
# brushwork.settings): the library's own lists.
_CHOICES = {
    "preserve_colors": api.PRESERVE_COLORS,
    "backbone": api.BACKBONES,
    "pooling": api.POOLINGS,
}
#: API keyword -> CLI option, where they differ.
_FLAGS: dict[str, str] = {}
_HELP = {
    "image_size": "long side of the output in px",
    "style_blend_weights": "how much of each style, e.g. 3,7",
    "preserve_colors": "keep the photo's colours",
    "strength": "0 = photo, 1 = full style",
    "seeds": "one image per seed, e.g. 1,2,3",
    "truncation": "lower: safer, less varied",
    "stabilize": "against flicker: 0 = off, 0.5 steady",
    "max_frames": "only the first N frames",
    "crf": "H.264 quality: lower is better, bigger",
    "backbone": "the feature network (auto: VGG-19, offline; lite0: a fast preview)",
}
_BASIC = {"image_size", "iterations", "style_weight", "content_weight", "style_scale",
          "style_blend_weights", "preserve_colors", "seed", "strength", "seeds", "class_name", "truncation",
          "backbone", "stabilize", "max_frames"}  # fmt: skip
#: Keywords the server decides, never the client (file paths on the server, devices, limits, callbacks).
_SERVER_SIDE = {"device", "max_pixels", "on_step", "on_frame", "on_progress", "weights", "weights_layout",
                "init_image", "style_mask", "style_masks", "audio", "clip", "clip_weights", "start_step", "model",
                "run", "content", "styles", "force", "on_stylised", "protection"}  # fmt: skip


@dataclass(frozen=True)
class Control:
    """One form control / parameter: the API's keyword, the CLI's option, its kind and default."""

    name: str
    kind: str  # int | float | str | bool | floats | ints | names
    default: Any = None
    optional: bool = False
    required: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def flag(self) -> str:
        return _FLAGS.get(self.name, "--" + self.name.replace("_", "-"))

    @property
    def basic(self) -> bool:
        return self.name in _BASIC

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "flag": self.flag,
            "kind": self.kind,
            "default": self.default,
            "optional": self.optional,
            "required": self.required,
            "choices": list(self.choices),
            "help": self.help,
            "basic": self.basic,
        }

    def coerce(self, value: Any) -> Any:
        """The value as the API expects it, or a BrushworkError naming the parameter."""
        if value is None and self.optional:
            return None
        bad = BrushworkError(f"{self.name}: expected {_KIND_WORDS[self.kind]}, got {str(value)[:60]!r}")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind in ("int", "float"):
            return _number(value, self.kind, bad)
        if self.kind == "str":
            if not isinstance(value, str) or len(value) > 200:
                raise bad
            if self.choices and value not in self.choices:
                raise BrushworkError(f"{self.name}: must be one of {', '.join(self.choices)}, not {value[:60]!r}")
            return value
        if isinstance(value, str):  # "3,7" as typed on the command line
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or len(value) > 64:
            raise bad
        if self.kind == "names":
            if not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
                raise bad
            return value
        return [_number(v, "int" if self.kind == "ints" else "float", bad) for v in value]


_KIND_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "floats": "a list of numbers",
    "ints": "a list of whole numbers",
    "names": "a list of names",
}


def _number(value: Any, kind: str, bad: BrushworkError) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise bad from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad
    if kind == "int":
        if float(value) != int(value) or abs(value) >= 2**63:
            raise bad
        return int(value)
    return float(value)


def _kind_of(annotation: Any, default: Any) -> tuple[str, bool]:
    """(kind, optional) from a dataclass field's or parameter's annotation (a string under PEP 563)."""
    text = str(annotation).replace("typing.", "").replace(" ", "")
    optional = "None" in text or default is None
    for marker, kind in (("list[float]", "floats"), ("list[int]", "ints"), ("list[str]", "names"),
                         ("Sequence[str]", "names"), ("Sequence[float]", "floats"), ("Sequence[int]", "ints"),
                         ("bool", "bool"), ("float", "float"), ("int", "int"), ("str", "str")):  # fmt: skip
        if marker in text:
            return kind, optional
    for typ, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "floats")):
        if isinstance(default, typ):
            return kind, optional
    return "str", optional


def _control(name: str, annotation: Any, default: Any, metadata: Any = None) -> Control:
    """A control; a config field's ``metadata`` (brushwork.settings) gives its help and choices, as on the CLI."""
    kind, optional = _kind_of(annotation, default)
    default = list(default) if isinstance(default, tuple) else default
    metadata = metadata or {}
    choices = metadata.get("choices") or _CHOICES.get(name, ())
    return Control(
        name, kind, default, optional, choices=tuple(choices), help=metadata.get("help") or _HELP.get(name, "")
    )


def signature_controls(fn: Callable) -> list[Control]:
    """A control for each keyword of an API function that a client may set."""
    controls = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind is not param.KEYWORD_ONLY or param.name in _SERVER_SIDE:
            continue
        required = param.default is param.empty
        control = _control(param.name, param.annotation, None if required else param.default)
        controls.append(replace(control, optional=control.optional and not required, required=required))
    return controls


@dataclass
class Inputs:
    """A job's resolved input files."""

    content: Path | None = None
    styles: list[Path] = field(default_factory=list)
    model: Path | None = None
    frames: int | None = None  # a clip's frame count, as counted when it was uploaded


#: What an engine's run returns: images (the worker saves them with their records) or files it wrote.
Results = list[Image.Image | Written]


@dataclass
class Engine:
    name: str
    label: str
    needs_content: bool
    styles: tuple[int, int]  # how many style images: (min, max)
    needs_model: bool
    controls: Callable[[], list[Control]]
    run: Callable[[Inputs, dict, RunContext], Results]
    check_api: Callable[[dict, int], None] = lambda params, n_styles: None
    available: Callable[[], bool] = lambda: True
    content_kind: str = "image"  # or "video": the content upload is a clip
    #: Engines whose models this one applies (the video engine: fast and AdaIN models).
    model_engines: tuple[str, ...] = ()
    #: Several jobs with the same params, model and styles at once: inputs of each -> results of each.
    run_batch: Callable[[list[Inputs], dict, str, int], list[Results]] | None = None

    def describe(self) -> dict:
        """The engine as the page and GET /api/engines show it."""
        return {"name": self.name, "label": self.label, "needs_content": self.needs_content,
                "styles": list(self.styles), "needs_model": self.needs_model, "content_kind": self.content_kind,
                "model_engines": list(self.model_engines or (self.name,)),
                "controls": [c.to_dict() for c in self.controls()]}  # fmt: skip

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
        self.check_api(clean, n_styles)
        return clean


def _check_limits(params: dict, limits: Limits) -> None:
    sizes = [params.get("image_size"), params.get("style_size"), *(params.get("scales") or [])]
    if any(s is not None and s > limits.max_image_size for s in sizes):
        raise BrushworkError(f"image size above this studio's limit of {limits.max_image_size} px")
    for name in ("iterations", "fine_iterations"):
        if (params.get(name) or 0) > limits.max_iterations:
            raise BrushworkError(f"{name} above this studio's limit of {limits.max_iterations}")
    if len(params.get("seeds") or []) > limits.max_seeds:
        raise BrushworkError(f"at most {limits.max_seeds} seeds per job")
    if (params.get("max_frames") or 0) > limits.video_frames:
        raise BrushworkError(f"max_frames above this studio's limit of {limits.video_frames}")


# ---------------------------------------------------------------------------------------------
# stylize: Gatys et al.'s optimisation (brushwork.api.stylize), with live previews.

_STYLIZE_EXTRA = {"backbone": "auto", "pooling": "max"}


def _stylize_controls() -> list[Control]:
    """The API's own keywords (backbone, pooling, style_blend_weights) and its config's fields."""
    controls = [_control(name, str, default) for name, default in _STYLIZE_EXTRA.items()]
    controls.append(_control("style_blend_weights", "list[float] | None", None))
    for f in fields(api.StyleConfig):
        if f.name != "style_blend":  # given as style_blend_weights, as in the API and on the CLI
            controls.append(_control(f.name, f.type, f.default if f.default is not MISSING else None, f.metadata))
    return controls


def _stylize_check(params: dict, n_styles: int) -> None:
    options = {k: v for k, v in params.items() if k not in _STYLIZE_EXTRA and k != "style_blend_weights"}
    if params.get("style_blend_weights") is not None:
        options["style_blend"] = params["style_blend_weights"]
    try:
        api.StyleConfig(**options).validate(n_styles)
    except TypeError as exc:
        raise BrushworkError(f"stylize: {exc}") from None


@lru_cache(maxsize=2)
def _backbone(name: str, pooling: str):
    """A worker keeps its feature network between jobs: loading it costs more than a small job."""
    return api.load_backbone(name, None, "torchvision", pooling)


def _stylize_run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
    options = dict(params)
    net = _backbone(options.pop("backbone", "auto"), options.pop("pooling", "max"))
    # A job whose earlier attempt died continues from that attempt's last intermediate (the record says so).
    start_step, init_image = _latest_intermediate(ctx.workdir)
    kept = {"at": time.monotonic()}

    def on_step(step) -> None:
        ctx.progress(step.step / max(1, step.total), lambda: api.step_image(step))
        due = ctx.intermediate_seconds and time.monotonic() - kept["at"] >= ctx.intermediate_seconds
        if due and step.step < step.total:
            _keep_intermediate(ctx.workdir, inputs, params, step)
            kept["at"] = time.monotonic()

    image = api.stylize(inputs.content, inputs.styles, backbone=net, device=ctx.device, max_pixels=ctx.max_pixels,
                        on_step=on_step, init_image=init_image, start_step=start_step, **options)  # fmt: skip
    return [image]


def _keep_intermediate(workdir: Path, inputs: Inputs, params: dict, step) -> None:
    """The picture so far with its record (settings and step), replacing the previous one: what a later
    attempt resumes from. A working file: recorded, not watermarked or registered (the result is)."""
    workdir.mkdir(parents=True, exist_ok=True)
    earlier = list(workdir.glob("step-*.png"))
    record = api.stylize_record(inputs.content, inputs.styles, step, **params)
    path = api.save(api.step_image(step), workdir / f"{api.step_name(step.step)}.png", record, force=True,
                    protection=None)  # fmt: skip
    for old in earlier:
        if old != path:
            old.unlink(missing_ok=True)


def _latest_intermediate(workdir: Path) -> tuple[int, Path | None]:
    """(step, file) of the newest readable intermediate in a job's folder, or (0, None) to start afresh."""
    for path in sorted(workdir.glob("step-*.png"), reverse=True):
        try:
            step = api.info(path).extra.get("step")
        except BrushworkError:  # unreadable: the attempt died while the file was being replaced
            continue
        if isinstance(step, int) and step > 0:
            return step, path
    return 0, None


# ---------------------------------------------------------------------------------------------
# The model engines: one API call each, guarded until the API function exists.


def _api_function(name: str) -> Callable | None:
    return getattr(api, name, None)


def _guarded(fn_name: str, call: Callable[[Callable, Inputs, dict, str, int], Any]) -> tuple[Callable, Callable]:
    def controls() -> list[Control]:
        fn = _api_function(fn_name)
        return signature_controls(fn) if fn else []

    def run(inputs: Inputs, params: dict, ctx: RunContext) -> Results:
        fn = _api_function(fn_name)
        if fn is None:
            raise BrushworkError(f"this brushwork has no {fn_name}")
        result = call(fn, inputs, params, ctx.device, ctx.max_pixels)
        return list(result) if isinstance(result, Sequence) else [result]

    return controls, run


@lru_cache(maxsize=4)
def _fast_model(path: Path, modified: float, device: str):
    """A worker keeps a fast model between jobs (by file and modification time): loading it costs more
    than applying it to a small picture."""
    return api.load_model(path, device=device)


def _loaded(path: Path, device: str):
    return _fast_model(path, path.stat().st_mtime, device)


_fast_controls, _fast_run = _guarded(
    "fast_apply", lambda fn, i, p, dev, mp: fn(_loaded(i.model, dev), i.content, device=dev, max_pixels=mp, **p)
)


def _fast_batch(inputs: list[Inputs], params: dict, device: str, max_pixels: int) -> list[Results]:
    """Jobs with the same model and settings: one forward pass for the pictures of one size."""
    images = api.fast_apply_many(_loaded(inputs[0].model, device), [i.content for i in inputs], device=device,
                                 max_pixels=max_pixels, **params)  # fmt: skip
    return [[image] for image in images]


_adain_controls, _adain_run = _guarded(
    "adain_apply", lambda fn, i, p, dev, mp: fn(i.model, i.content, i.styles, device=dev, max_pixels=mp, **p)
)


def _adain_batch(inputs: list[Inputs], params: dict, device: str, max_pixels: int) -> list[Results]:
    """Jobs with the same model, styles and settings: one forward pass for the photos of one size."""
    images = api.adain_apply_many(inputs[0].model, [i.content for i in inputs], inputs[0].styles, device=device,
                                  max_pixels=max_pixels, **params)  # fmt: skip
    return [[image] for image in images]


_gan_controls, _gan_run = _guarded("gan_sample", lambda fn, i, p, dev, mp: fn(i.model, device=dev, **p))


# ---------------------------------------------------------------------------------------------
# video: a fast or AdaIN model on every frame of a clip (brushwork.api.stylize_video)


def _video_controls() -> list[Control]:
    return signature_controls(api.stylize_video)


def _video_check(params: dict, n_styles: int) -> None:
    """The API's own bounds, checked before queueing (the model's kind is checked at submission)."""
    if not 0 <= params.get("strength", 1.0) <= 1:
        raise BrushworkError("strength must be between 0 and 1")
    if not 0 <= params.get("stabilize", 0.0) < 1:
        raise BrushworkError("stabilize must be in 0..1 (0 = off; 1 would freeze the picture)")
    if not 0 <= params.get("crf", 18) <= 51:
        raise BrushworkError("crf must be 0..51 (H.264)")
    if params.get("max_frames") is not None and params["max_frames"] < 1:
        raise BrushworkError("max_frames must be at least 1")


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
                               on_stylised=on_stylised, **params)  # fmt: skip
    poster = None
    if "first" in frames:  # the still the gallery shows before the clip plays: a copy of the clip's record,
        # marked with the clip's own work ID (not a work of its own: not registered)
        from brushwork.protect import Protection

        clip_id = (report.record.extra.get("protection") or {}).get("work_id")
        marking = Protection(register=False, work_id=clip_id) if clip_id else None
        poster = api.save(frames["first"], target.with_suffix(".poster.jpg"), copy.deepcopy(report.record),
                          protection=marking)  # fmt: skip
    return [Written(target, report.record, poster)]


def _video_available() -> bool:
    import importlib.util

    return _api_function("stylize_video") is not None and importlib.util.find_spec("av") is not None


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("stylize", "Optimisation (Gatys)", True, (1, 8), False, _stylize_controls, _stylize_run, _stylize_check),
        Engine(
            "fast",
            "Feed-forward model",
            True,
            (0, 0),
            True,
            _fast_controls,
            _fast_run,
            available=lambda: _api_function("fast_apply") is not None,
            run_batch=_fast_batch,
        ),  # fmt: skip
        Engine(
            "adain",
            "AdaIN (any style)",
            True,
            (1, 8),
            True,
            _adain_controls,
            _adain_run,
            available=lambda: _api_function("adain_apply") is not None,
            run_batch=_adain_batch,
        ),  # fmt: skip
        Engine(
            "gan-sample",
            "GAN samples",
            False,
            (0, 0),
            True,
            _gan_controls,
            _gan_run,
            available=lambda: _api_function("gan_sample") is not None,
        ),  # fmt: skip
        Engine(
            "video",
            "Video (a model on every frame)",
            True,
            (0, 8),
            True,
            _video_controls,
            _video_run,
            _video_check,
            available=_video_available,
            content_kind="video",
            model_engines=("fast", "adain"),
        ),  # fmt: skip
    )
}


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
