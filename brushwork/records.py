"""The record of how an image was made, and how it travels inside the file.

A :class:`Record` holds the engine, every parameter (under the Python API's keyword names, so a
run can be repeated from it), each input's name and SHA-256, the model files' hashes, the
versions, device, seed and times. Every image brushwork returns carries one
(``record_of(image)``) and every file it writes embeds one:

* PNG: a ``parameters`` text chunk with A1111-style infotext (read by image hosts and other
  tools), and the full JSON record in a ``brushwork`` chunk;
* JPEG, WebP and TIFF: an XMP packet with the JSON record, and the infotext as EXIF
  UserComment (where A1111 puts it);
* GIF and MP4: the JSON record as the file's comment.

Reading is defensive: a file may be hostile (a decompression bomb, a text chunk that inflates past
Pillow's limit, JSON nested a million deep), and all of these end in one :class:`BrushworkError`.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import os
import platform
import re
import warnings
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from brushwork._version import __version__
from brushwork.errors import BrushworkError
from brushwork.files import atomic_write

SCHEMA = "brushwork.record/1"
#: PNG chunk with A1111-style infotext (the key A1111 and the tools that read it use).
INFOTEXT_KEY = "parameters"
#: PNG chunk with the full JSON record.
RECORD_KEY = "brushwork"
#: Where a returned PIL image keeps its record.
IMAGE_INFO_KEY = "brushwork_record"
#: Formats the one exit writes, by file suffix.
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
#: A record is small; a larger one is not ours (or is an attack).
MAX_RECORD_BYTES = 4 * 1024 * 1024
XMP_NAMESPACE = "https://brushwork.invalid/ns/record/1.0/"
_XMP_ATTRIBUTE = re.compile(rb'brushwork:Record="([^"]*)"')
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
#: Names older records used: the optimisation engine was "gatys" (it is "stylize", as the verb, the API
#: function and the studio name it), and its blend "style_blend" (the option is --style-blend-weights).
_OLD_ENGINES = {"gatys": "stylize"}
_OLD_PARAMETERS = {"stylize": {"style_blend": "style_blend_weights"}}


def _current_names(record: Record) -> Record:
    """``record`` under today's engine and parameter names, so older outputs still replay."""
    record.engine = _OLD_ENGINES.get(record.engine, record.engine)
    for old, new in _OLD_PARAMETERS.get(record.engine, {}).items():
        if old in record.parameters and new not in record.parameters:
            record.parameters[new] = record.parameters.pop(old)
    return record


@dataclass
class Record:
    """How one output was made. ``parameters`` use the Python API's keyword names."""

    engine: str
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)  # role -> described input, or a list of them
    models: dict[str, Any] = field(default_factory=dict)  # role -> described model file
    seed: int | None = None
    device: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. step of an intermediate, protection applied
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        # _jsonable copies every dict and list, so asdict's deep copy first would only double the work
        # (a protected output turns its record into JSON three times).
        return _jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    def finish(self) -> Record:
        self.finished = _now()
        return self

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        if not isinstance(data, dict) or not isinstance(data.get("engine"), str):
            raise BrushworkError("not a brushwork record (no engine)")
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        for name in ("parameters", "inputs", "models", "versions", "extra"):
            if not isinstance(getattr(record, name), dict):
                raise BrushworkError(f"not a brushwork record ({name} is not an object)")
        return _current_names(record)

    @classmethod
    def from_legacy(cls, data: dict) -> Record:
        """Files written before records existed held one flat JSON object of parameters."""
        data = dict(data)
        engine = data.pop("engine", "stylize")
        inputs = {k: data.pop(k) for k in ("content", "styles", "init_image", "mask") if k in data}
        models = {"model": data.pop("model")} if "model" in data else {}
        return _current_names(
            cls(
                engine=str(engine),
                parameters=data,
                inputs=inputs,
                models=models,
                seed=data.get("seed"),
                device=data.pop("device", None),
                extra={"legacy": True},
            )
        )

    def input_hashes(self) -> dict[str, str]:
        """{role or role[i]: sha256} of every input that was a file."""
        hashes = {}
        for role, value in self.inputs.items():
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if isinstance(item, dict) and item.get("sha256"):
                    hashes[role if not isinstance(value, list) else f"{role}[{i}]"] = item["sha256"]
        return hashes


def new_record(engine: str, parameters: dict, *, inputs: dict | None = None, models: dict | None = None,
               seed: int | None = None, device: object = None, extra: dict | None = None) -> Record:  # fmt: skip
    """A record started now, with the versions of this installation."""
    return Record(engine=engine, parameters=_jsonable(parameters), inputs=_jsonable(inputs or {}),
                  models=_jsonable(models or {}), seed=seed, device=None if device is None else str(device),
                  versions=versions(), started=_now(), extra=_jsonable(extra or {}))  # fmt: skip


def versions() -> dict[str, str]:
    import torch  # loaded to write a record, never to read one: info and verify start without it (#21)

    return {"brushwork": __version__, "torch": torch.__version__, "python": platform.python_version()}


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_input(source: object) -> dict:
    """Name and SHA-256 of an input file (or the size of an in-memory image), so the record says
    exactly which file was used. Not its folder: records travel inside published images, and a
    local path would tell strangers about the artist's disk."""
    if isinstance(source, Image.Image):
        return {"name": "<in-memory image>", "size": list(source.size)}
    if source is None:
        return {}
    path = Path(source)
    described = {"name": path.name}
    if path.is_file():
        described["sha256"] = sha256_file(path)
    return described


def changed_inputs(record: Record, inputs: dict) -> list[str]:
    """The roles (``content``, ``styles``, ``model``, …) whose files now differ from those in ``record``
    (by SHA-256); ``inputs`` maps a role to a path or a list of paths."""
    changed = []
    for role, given in inputs.items():
        stored = record.inputs.get(role, record.models.get(role))
        if given is None or stored is None:
            continue
        now = [describe_input(g).get("sha256") for g in (given if isinstance(given, list) else [given])]
        then = [s.get("sha256") if isinstance(s, dict) else None for s in (stored if isinstance(stored, list)
                                                                          else [stored])]  # fmt: skip
        if len(now) != len(then) or any(a and b and a != b for a, b in zip(now, then, strict=True)):
            changed.append(role)
    return changed


def attach(image: Image.Image, record: Record) -> Image.Image:
    """Give ``image`` its record (and the infotext under ``info["parameters"]``, as Pillow shows A1111 PNGs)."""
    image.info[IMAGE_INFO_KEY] = record
    image.info[INFOTEXT_KEY] = infotext(record, image.size)
    return image


def record_of(image: Image.Image) -> Record | None:
    record = image.info.get(IMAGE_INFO_KEY)
    return record if isinstance(record, Record) else None


# ---------------------------------------------------------------------------------------------
# Infotext: "first line\nKey: value, Key: value, ..." as AUTOMATIC1111 writes it.

_INFOTEXT_FIRST = ("iterations", "steps", "seed")
#: Engines that paint in one pass of a trained network: no sampler, one step, nothing random.
_FEED_FORWARD = ("fast", "adain", "video")
_OPTIMIZERS = {"lbfgs": "L-BFGS", "adam": "Adam"}


def _sampler_steps_seed(record: Record) -> tuple[object, object, object]:
    """What A1111 hosts show as Sampler, Steps and Seed, said honestly for each kind of engine (None: not said).

    The optimisation engine's sampler is its optimiser and its steps the iterations at the first scale;
    a feed-forward network is one pass with no seed; a GAN is one pass of its generator from a seeded latent."""
    params = record.parameters
    seed = record.seed if record.seed is not None else params.get("seed")
    if record.engine == "stylize":
        optimizer = params.get("optimizer", "lbfgs")
        return _OPTIMIZERS.get(optimizer, optimizer), params.get("iterations"), seed
    if record.engine in _FEED_FORWARD:
        return "feed-forward network (one pass)", 1, "none (deterministic)"
    if record.engine.startswith("gan"):
        return "GAN generator (one pass)", 1, seed
    return None, params.get("iterations", params.get("steps")), seed


def infotext(record: Record, size: tuple[int, int] | None = None) -> str:
    """A1111-style text: a description line, then ``Key: value`` pairs (values with commas quoted)."""
    inputs = record.inputs
    content = _input_name(inputs.get("content"))
    styles = [_input_name(s) for s in _as_list(inputs.get("styles") or inputs.get("style"))]
    first = f"brushwork {record.engine}"
    if content:
        first += f": {content}"
    if styles:
        first += f" in the style of {' + '.join(s for s in styles if s)}"
    pairs: list[tuple[str, object]] = []
    params = record.parameters
    sampler, steps, seed = _sampler_steps_seed(record)
    for key, value in (("Sampler", sampler), ("Steps", steps), ("Seed", seed)):
        if value is not None:
            pairs.append((key, value))
    if size:
        pairs.append(("Size", f"{size[0]}x{size[1]}"))
    model = record.models.get("model") or record.models.get("backbone")
    if isinstance(model, dict):
        pairs.append(("Model", model.get("name")))
        if model.get("sha256"):
            pairs.append(("Model hash", model["sha256"][:10]))
    elif params.get("backbone"):
        pairs.append(("Model", params["backbone"]))
    pairs.append(("Engine", record.engine))
    for key in sorted(params):
        value = params[key]
        if key in _INFOTEXT_FIRST or value is None or isinstance(value, dict):
            continue
        pairs.append((key.replace("_", " ").capitalize(), value))
    pairs.append(("Version", f"brushwork {record.versions.get('brushwork', '?')}"))
    return first + "\n" + ", ".join(f"{key}: {_infotext_value(value)}" for key, value in pairs)


def _infotext_value(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    # A1111 quotes values that hold its separators.
    return json.dumps(text) if any(c in text for c in ',:\n"') else text


def _input_name(item: object) -> str | None:
    return item.get("name") if isinstance(item, dict) else None


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value] if value else []


# ---------------------------------------------------------------------------------------------
# Writing


def write_image(image: Image.Image, path: str | os.PathLike, record: Record, quality: int = 95,
                bit_depth: int = 8) -> Path:  # fmt: skip
    """Write ``image`` atomically in the format its suffix names, with ``record`` embedded.

    ``bit_depth=16`` writes a 16-bit-per-channel TIFF from the pixels an engine kept at 16 bits
    (``media.high_precision``). The caller checks the path first (``files.check_output_path``).
    """
    data = encode_image(image, path, record, quality, bit_depth)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def encode_image(image: Image.Image, path: str | os.PathLike, record: Record, quality: int = 95,
                 bit_depth: int = 8) -> bytes:  # fmt: skip
    """The bytes :func:`write_image` would write to ``path`` (whose suffix names the format): the output
    exit signs them before anything reaches the disk."""
    path = Path(path)
    fmt = IMAGE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise BrushworkError(f"{path}: output must be one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    text, payload = infotext(record, image.size), record.to_json()
    buffer = io.BytesIO()
    if bit_depth == 16:
        _write_tiff16(image, path, buffer, fmt, text, payload)
        return buffer.getvalue()
    if bit_depth != 8:
        raise BrushworkError(f"bit depth must be 8 or 16, not {bit_depth}")
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(INFOTEXT_KEY, text)
        info.add_itxt(RECORD_KEY, payload, zip=True)
        options: dict = {"pnginfo": info}
    else:
        exif = Image.Exif()
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\0" + text.encode("utf-16-be")
        options = {"exif": exif.tobytes(), "xmp": xmp_packet(payload)}
        if fmt in ("JPEG", "WEBP"):
            options["quality"] = quality
        if fmt == "TIFF":
            options = {"tiffinfo": {700: options["xmp"], 270: text}, "compression": "tiff_deflate"}
    rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
    rgb.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _write_tiff16(image: Image.Image, path: Path, out: io.BytesIO, fmt: str, text: str, payload: str) -> None:
    """A 16-bit RGB TIFF with the record as XMP (tag 700) and the infotext as its description, into ``out``.

    Written with tifffile: Pillow writes 16 bits per sample only for single-channel images."""
    from brushwork.media import HIGH_PRECISION_KEY

    if fmt != "TIFF":
        raise BrushworkError(f"{path}: 16 bits per channel are written as TIFF only (.tif)")
    pixels = image.info.get(HIGH_PRECISION_KEY)
    if pixels is None:
        raise BrushworkError("this image holds 8-bit pixels only; make it inside brushwork.high_precision() "
                             "(the CLI does so for --bit-depth 16)")  # fmt: skip
    try:
        import tifffile
    except ImportError as exc:
        raise BrushworkError("16-bit TIFF needs tifffile: pip install 'brushwork[print]'") from exc
    xmp = xmp_packet(payload)
    tifffile.imwrite(out, pixels, photometric="rgb", compression="zlib", metadata=None, description=text,
                     extratags=[(700, "B", len(xmp), xmp, True)])  # fmt: skip


def xmp_packet(record_json: str) -> bytes:
    """An XMP packet carrying the record as one attribute (escaped), readable by exiftool and by :func:`read_record`."""
    from xml.sax.saxutils import escape

    escaped = escape(record_json, {'"': "&quot;"})
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:brushwork="{XMP_NAMESPACE}" brushwork:Record="{escaped}"/>'
        '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode()


# ---------------------------------------------------------------------------------------------
# Reading

RECORD_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")


def read_record(path: str | os.PathLike) -> Record:
    """The record embedded in a brushwork output (any format it writes), or :class:`BrushworkError`."""
    path = Path(path)
    if path.is_dir():
        raise BrushworkError(f"{path}: is a folder, not an image")
    if not path.exists():
        raise BrushworkError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise BrushworkError(f"{path}: permission denied")
    text = _video_comment(path) if path.suffix.lower() in RECORD_VIDEO_SUFFIXES else _image_record_text(path)
    if text is None:
        raise BrushworkError(f"{path}: carries no brushwork parameters")
    if len(text) > MAX_RECORD_BYTES:
        raise BrushworkError(f"{path}: its parameters are too large to be a brushwork record")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BrushworkError(f"{path}: its parameters are not valid brushwork JSON") from exc
    if not isinstance(data, dict):
        raise BrushworkError(f"{path}: its parameters are not a JSON object")
    try:
        return Record.from_dict(data) if data.get("schema") == SCHEMA else Record.from_legacy(data)
    except (TypeError, BrushworkError) as exc:
        raise BrushworkError(f"{path}: its parameters are not a brushwork record") from exc


def _image_record_text(path: Path) -> str | None:
    old_limit = Image.MAX_IMAGE_PIXELS
    # Only the header and metadata are read, never the pixels: a decompression bomb is harmless here.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings(), Image.open(path) as img:
            warnings.simplefilter("ignore")
            info = dict(img.info)
            if img.format == "PNG":
                # Text chunks after the image data are only seen once the file has been read through.
                if RECORD_KEY not in info and INFOTEXT_KEY not in info:
                    img.load()
                    info = dict(img.info)
            elif img.format == "TIFF":
                info["xmp"] = img.tag_v2.get(700)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise BrushworkError(f"{path}: not an image file brushwork can read") from exc
    except ValueError as exc:  # e.g. a text chunk that inflates past PngImagePlugin.MAX_TEXT_CHUNK
        raise BrushworkError(f"{path}: its metadata is too large or malformed ({exc})") from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise BrushworkError(f"{path}: unreadable or corrupt image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if isinstance(info.get(RECORD_KEY), str):
        return info[RECORD_KEY]
    xmp = info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode()
    if isinstance(xmp, bytes) and (match := _XMP_ATTRIBUTE.search(xmp)):
        return html.unescape(match.group(1).decode("utf-8", "replace"))
    comment = info.get("comment")
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", "replace")
    if isinstance(comment, str) and comment.lstrip().startswith("{"):
        return comment
    legacy = info.get(INFOTEXT_KEY)  # files from before records: JSON in the parameters chunk
    if isinstance(legacy, str) and legacy.lstrip().startswith("{"):
        return legacy
    return None


def _video_comment(path: Path) -> str | None:
    try:
        import av
    except ImportError as exc:
        raise BrushworkError("reading a video's record needs PyAV: pip install 'brushwork[video]'") from exc
    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise BrushworkError(f"{path}: not a video brushwork can read ({exc})") from exc


# ---------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """Plain JSON types only: tuples become lists, paths strings, non-finite floats None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
