"""The studio's inputs: uploaded images (stored by content hash), the bundled examples, and models.

Client file names are never used as paths: an upload is stored as ``uploads/<sha256>.<ext>`` and
referred to as ``upload:<sha256>.<ext>``; a bundled image as ``example:<name>``. A reference is
checked against a strict pattern and resolved inside its folder only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from brushwork import api
from brushwork.api import load_image, require_av, video_stream
from brushwork.errors import BrushworkError
from brushwork.studio.config import Limits, StudioConfig
from brushwork.studio.engines import ENGINES, Inputs, available_engines

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IMAGE_EXTS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif"}
_UPLOAD_REF = re.compile(r"upload:([0-9a-f]{64})(\.(?:jpg|png|webp|tif|bmp|gif))")
#: Clip containers the video engine takes (PyAV's format names) -> the suffix a stored clip gets.
VIDEO_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": ".mp4", "matroska,webm": ".mkv", "avi": ".avi"}
_VIDEO_REF = re.compile(r"upload:([0-9a-f]{64})(\.(?:mp4|mkv|avi))")
_EXAMPLE_REF = re.compile(r"example:([A-Za-z0-9][A-Za-z0-9_-]{0,100}\.(?:jpg|png))")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")
#: Model kinds (the "kind" in a model's JSON) -> the studio engine that applies them.
MODEL_ENGINES = {"fast-style": "fast", "adain": "adain", "gan": "gan-sample"}
#: Engines that apply models of other engines (the video engine runs fast and AdaIN models on each frame).
ENGINE_MODELS = {"video": ("fast", "adain")}
_MAX_MODEL_JSON = 1024 * 1024


def check_client_filename(name: str | None) -> str:
    """The client's file name, kept only as a label; names that try to reach other folders are refused."""
    name = name or "upload"
    if len(name) > 255 or any(c in name for c in "/\\\x00") or name.startswith(".") or ".." in name:
        raise BrushworkError(f"file name {name[:80]!r} refused: names must not contain path separators or '..'")
    return name


@dataclass
class StagedUpload:
    """A checked upload in a temporary file, stored under its hash by :meth:`commit` (or dropped)."""

    tmp: Path
    final: Path
    label: str
    frames: int | None = None  # a clip's frame count

    @property
    def ref(self) -> str:
        return f"upload:{self.final.name}"

    def commit(self) -> None:
        if self.final.exists():  # the same bytes were uploaded before
            self.tmp.unlink(missing_ok=True)
        else:
            os.replace(self.tmp, self.final)
        name_file = _name_file(self.final)
        if not name_file.exists():  # the picker shows the name it was first uploaded under
            name_tmp = name_file.with_name(f".incoming-{name_file.name}")
            name_tmp.write_text(self.label[:255], encoding="utf-8")
            os.replace(name_tmp, name_file)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def stage_upload(config: StudioConfig, data: bytes, filename: str | None, video: bool = False) -> StagedUpload:
    """Check that ``data`` is an image within the pixel limit (or a clip within the video limits); keep it
    in a temporary file until committed."""
    label = check_client_filename(filename)
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=config.uploads)
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        clip = probe_video(tmp_path, config.limits) if video else None
        ext = clip["suffix"] if clip else _check_image(tmp_path, config, label)
    except BrushworkError as exc:
        tmp_path.unlink(missing_ok=True)
        # The checks name the temporary path; the client knows its file by its own name.
        raise BrushworkError(str(exc).replace(str(tmp_path), label)) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256(data).hexdigest()
    return StagedUpload(tmp_path, config.uploads / f"{digest}{ext}", label, clip["frames"] if clip else None)


def _check_image(path: Path, config: StudioConfig, label: str) -> str:
    image = load_image(path, config.limits.image_pixels)  # refuses non-images and bombs
    image.close()
    with Image.open(path) as probe:
        ext = IMAGE_EXTS.get(probe.format or "")
    if ext is None:
        raise BrushworkError(f"{label}: image format not accepted (use JPEG, PNG, WebP, TIFF, BMP or GIF)")
    return ext


def probe_video(path: Path, limits: Limits) -> dict:
    """Check a clip against the studio's limits without decoding a frame: its container, frame size (from
    the stream header), duration, and frames (its video packets, counted up to the limit).
    Returns {"frames", "seconds", "width", "height", "suffix"}; a BrushworkError names what is wrong."""
    av = require_av()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise BrushworkError(f"{path}: not a video brushwork can read ({type(exc).__name__})") from None
    with container:
        suffix = VIDEO_FORMATS.get(container.format.name)
        if suffix is None:
            raise BrushworkError(f"{path}: clip format {container.format.name!r} not accepted (use MP4, MOV, WebM "
                                 "or AVI)")  # fmt: skip
        stream = video_stream(container, path)
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise BrushworkError(f"{path}: the video stream has no frame size")
        if width * height > limits.video_pixels:
            raise BrushworkError(f"{path}: frames of {width}x{height} px are over this studio's limit of "
                                 f"{limits.video_pixels} pixels")  # fmt: skip
        seconds = container.duration / 1_000_000 if container.duration else 0.0  # AV_TIME_BASE
        if seconds > limits.video_seconds:
            raise BrushworkError(f"{path}: {seconds:.0f} s long, over this studio's limit of "
                                 f"{limits.video_seconds:.0f} s")  # fmt: skip
        frames = 0
        try:
            for packet in container.demux(stream):
                frames += packet.size > 0  # the demuxer ends with an empty packet
                if frames > limits.video_frames:
                    raise BrushworkError(f"{path}: more than this studio's limit of {limits.video_frames} frames")
        except av.FFmpegError as exc:
            raise BrushworkError(f"{path}: the video could not be read ({type(exc).__name__})") from None
    if not frames:
        raise BrushworkError(f"{path}: the video has no frames")
    return {"frames": frames, "seconds": seconds, "width": width, "height": height, "suffix": suffix}


def resolve_image(config: StudioConfig, ref: str, video: bool = False) -> Path:
    """The file behind an image reference (or, with ``video``, a clip's), or a BrushworkError."""
    if video:
        if not (m := _VIDEO_REF.fullmatch(ref)):
            raise BrushworkError(f"unknown clip reference {ref[:80]!r} (expected upload:<sha256>.mp4, .mkv or .avi)")
        path = config.uploads / (m.group(1) + m.group(2))
    elif m := _UPLOAD_REF.fullmatch(ref):
        path = config.uploads / (m.group(1) + m.group(2))
    elif m := _EXAMPLE_REF.fullmatch(ref):
        path = EXAMPLES / m.group(1)
    else:
        raise BrushworkError(f"unknown image reference {ref[:80]!r} (expected upload:<sha256>.<ext> or example:<name>)")
    if not path.is_file():
        raise BrushworkError(f"{ref}: no such {'clip' if video else 'image'} in the studio")
    return path


def _name_file(upload: Path) -> Path:
    """Beside an upload (stored under its hash): the client's name for it."""
    return upload.with_name(f"{upload.name}.name")


def list_images(config: StudioConfig) -> list[dict]:
    """Bundled example images and earlier uploads (by the name they were uploaded under), newest first."""
    images = [{"ref": f"example:{p.name}", "name": p.stem, "source": "example"} for p in sorted(EXAMPLES.glob("*.jpg"))]
    uploads = sorted(config.uploads.glob("*.*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in uploads:
        if _UPLOAD_REF.fullmatch(f"upload:{path.name}"):
            try:
                name = _name_file(path).read_text(encoding="utf-8")[:255].strip() or path.name[:12]
            except (OSError, UnicodeDecodeError):  # uploaded before names were kept
                name = path.name[:12]
            images.append({"ref": f"upload:{path.name}", "name": name, "source": "upload"})
    return images


def _model_kind(json_path: Path) -> str | None:
    try:
        if json_path.stat().st_size > _MAX_MODEL_JSON:
            return None
        kind = json.loads(json_path.read_text()).get("kind")
    except (OSError, ValueError, AttributeError, RecursionError):  # deep nesting: not a model of ours
        return None
    return kind if isinstance(kind, str) else None


def list_models(config: StudioConfig) -> list[dict]:
    """Models the studio can apply: the bundled ones, and those placed in DATA/models (a model file
    with its JSON, or a GAN run folder)."""
    # Magenta's arbitrary network comes with brushwork (no file here): the first, so the any-style default.
    found: dict[str, dict] = {api.MAGENTA_MODEL: {"name": api.MAGENTA_MODEL, "engine": "adain", "source": "example",
                                                  "path": Path(api.MAGENTA_MODEL)}}  # fmt: skip
    for source, folder in (("example", EXAMPLES), ("data", config.models)):
        for path in sorted(folder.glob("*.safetensors")):
            kind = _model_kind(path.with_suffix(".json"))
            if kind in MODEL_ENGINES and _MODEL_NAME.fullmatch(path.stem):
                found[path.stem] = {"name": path.stem, "engine": MODEL_ENGINES[kind], "source": source, "path": path}
        if source == "data":
            for run in sorted(p for p in folder.iterdir() if p.is_dir()):
                if (run / "options.json").is_file() and _MODEL_NAME.fullmatch(run.name):
                    found[run.name] = {"name": run.name, "engine": "gan-sample", "source": source, "path": run}
    return list(found.values())


def check_model_name(name: str) -> str:
    """A model name the studio can keep, uploaded or trained: a plain file stem, not Magenta's."""
    if not _MODEL_NAME.fullmatch(name) or name == api.MAGENTA_MODEL:
        raise BrushworkError(f"model name {name[:80]!r}: use letters, digits, '.', '_' and '-' (up to 101)")
    return name


def check_new_model_name(models: Path, name: str | None) -> str:
    """A name for a model the studio is to make or keep: valid as add_model names are, and taken by no
    model yet (bundled or in DATA/models), so that nothing is ever replaced. A BrushworkError if not."""
    if not name:
        raise BrushworkError("give the new model a name (the model field)")
    check_model_name(name)
    taken = [EXAMPLES / f"{name}.safetensors", models / f"{name}.safetensors", models / name]
    if any(path.exists() for path in taken):
        raise BrushworkError(f"a model named {name!r} is already in the studio; choose another name")
    return name


def install_trained_model(models: Path, checkpoint: Path, name: str) -> Path:
    """Put a model a job trained (``checkpoint`` and its JSON, in the job's folder) into DATA/models as
    ``name``. Hard links, made exclusively: an existing name is never replaced, even by a job racing this
    one; an attempt retried after its model was installed finds its own files there and goes on."""
    target = models / f"{name}.safetensors"
    if target.exists() and os.path.samefile(target, checkpoint):
        return target  # this job's earlier attempt got this far
    check_new_model_name(models, name)
    pairs = [(checkpoint.with_suffix(".json"), target.with_suffix(".json")), (checkpoint, target)]  # weights last
    made: list[Path] = []
    try:
        for source, link in pairs:
            _link_exclusive(source, link)
            made.append(link)
    except FileExistsError:
        for link in made:
            link.unlink(missing_ok=True)
        raise BrushworkError(
            f"a model named {name!r} was added while this job trained; the model is not kept"
        ) from None
    return target


def _link_exclusive(source: Path, link: Path) -> None:
    """``link`` made for ``source``'s bytes, never over an existing file (FileExistsError)."""
    try:
        os.link(source, link)
    except FileExistsError:
        raise
    except OSError:  # DATA/models on another file system (or one without hard links): a copy beside it, linked in
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=link.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.link(tmp, link)
        finally:
            os.unlink(tmp)


def resolve_model(config: StudioConfig, name: str, engine: str) -> Path:
    return _find_model(config, name, engine)["path"]


def model_engine(config: StudioConfig, name: str, engine: str) -> str:
    """The engine a model belongs to (``fast`` or ``adain`` for a model the video engine applies)."""
    return _find_model(config, name, engine)["engine"]


def _find_model(config: StudioConfig, name: str, engine: str) -> dict:
    if not _MODEL_NAME.fullmatch(name or ""):
        raise BrushworkError(f"model name {str(name)[:80]!r} is not valid")
    for model in list_models(config):
        if model["name"] == name:
            if model["engine"] not in ENGINE_MODELS.get(engine, (engine,)):
                raise BrushworkError(f"model {name!r} is for the {model['engine']} engine, not {engine}")
            return model
    raise BrushworkError(f"no model named {name!r} (see GET /api/models)")


def resolve_inputs(config: StudioConfig, engine: str, inputs: dict):
    """A job's stored references -> the files the engine reads (a training job's model is the name of
    the model it makes, not a file)."""
    content = inputs.get("content")
    makes_model = engine in ENGINES and ENGINES[engine].makes_model
    model = inputs.get("model")
    return Inputs(
        content=resolve_image(config, content, video=engine == "video") if content else None,
        styles=[resolve_image(config, ref) for ref in inputs.get("styles") or []],
        model=resolve_model(config, model, engine) if model and not makes_model else None,
        frames=inputs.get("frames"),
        masks=[resolve_image(config, ref) for ref in inputs.get("masks") or []],
        contents=[resolve_image(config, ref) for ref in inputs.get("contents") or []],
        new_model=model if makes_model else None,
    )


def picture_settings(config: StudioConfig, data: bytes, filename: str | None) -> dict:
    """PNG Info: what a dropped picture says of how it was made. A brushwork output gives its engine,
    settings (the studio's names) and the library refs and model its inputs match by hash, ready for
    the form; another tool's picture (AUTOMATIC1111, ComfyUI) gives its own text, to read. Nothing is kept."""

    staged = stage_upload(config, data, filename)  # an image within the pixel limit: its chunks are safe to read
    try:
        try:
            record = api.read_record(staged.tmp)
        except BrushworkError:
            with Image.open(staged.tmp) as img:
                img.load()  # text chunks after the pixels
                text = img.info.get(api.INFOTEXT_KEY)
            if not isinstance(text, str) or not text.strip():
                raise BrushworkError(f"{staged.label}: carries no settings brushwork or AUTOMATIC1111 wrote") from None
            return {"engine": None, "text": text[:20_000]}
    finally:
        staged.discard()
    engines = {e.name: e for e in available_engines()}
    engine = engines.get(record.engine)
    names = {c.name for c in engine.controls()} if engine else set()
    by_hash = _library_by_hash(config)
    hashes = record.input_hashes()
    styles = [by_hash.get(h) for role, h in sorted(hashes.items()) if role.startswith("styles")]
    model = (record.models.get("model") or {}).get("name")
    model_names = {m["name"] for m in list_models(config)}
    model = {api.MAGENTA_NETWORK: api.MAGENTA_MODEL}.get(model, Path(model).stem if model else None)
    params = {k: v for k, v in record.parameters.items() if k in names and v is not None}
    if "seed" in names and record.seed is not None:
        params.setdefault("seed", record.seed)
    return {
        "engine": engine.name if engine else None,
        "made_by": record.engine,
        "params": params,
        "content_ref": by_hash.get(hashes.get("content", "")),
        "style_refs": [ref for ref in styles if ref],
        "styles_missing": styles.count(None),
        "model": model if model in model_names else None,
        "text": None,
    }


def _library_by_hash(config: StudioConfig) -> dict[str, str]:
    """SHA-256 -> library ref, for every bundled example and upload (an upload's name is its hash)."""
    refs = {}
    for image in list_images(config):
        ref = image["ref"]
        if ref.startswith("upload:"):
            refs[ref.split(":", 1)[1].split(".", 1)[0]] = ref
        else:
            refs[_example_hash(ref)] = ref
    return refs


@functools.cache
def _example_hash(ref: str) -> str:
    return hashlib.sha256((EXAMPLES / ref.split(":", 1)[1]).read_bytes()).hexdigest()


def add_model(config: StudioConfig, weights: bytes, description: bytes, filename: str | None) -> dict:
    """A fast or AdaIN model uploaded to the studio (its ``.safetensors`` and the ``.json`` brushwork writes
    beside it): checked by loading it as the engine would, then put in DATA/models under its file's name.
    safetensors holds tensors only (nothing runs when it is read); an existing name is never replaced."""
    name = check_model_name(Path(check_client_filename(filename)).stem)
    if len(description) > _MAX_MODEL_JSON:
        raise BrushworkError(f"{name}.json is larger than {_MAX_MODEL_JSON // 1024} KiB")
    target = config.models / f"{name}.safetensors"
    if target.exists() or any(m["name"] == name for m in list_models(config)):
        raise FileExistsError(f"a model named {name!r} is already in the studio")
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=config.models))
    staged, staged_json = staging / target.name, staging / f"{name}.json"
    try:
        staged.write_bytes(weights)
        staged_json.write_bytes(description)
        kind = _model_kind(staged_json)
        if kind not in (api.FAST_KIND, api.ADAIN_KIND):
            raise BrushworkError(f"{name}.json: not a fast or AdaIN model's description (its 'kind')")
        try:
            api.load_model(staged, device="cpu")
        except BrushworkError as exc:  # it names the staging path; the client knows the file by its name
            raise BrushworkError(str(exc).replace(str(staged), staged.name)) from None
        os.replace(staged_json, target.with_suffix(".json"))
        os.replace(staged, target)  # last: a model is listed once its weights are here
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return {"name": name, "engine": MODEL_ENGINES[kind], "source": "data"}
