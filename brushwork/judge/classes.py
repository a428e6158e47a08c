"""Class consistency of a conditional generator: does a classifier the user trusts see the class asked for?

The classifier is an ONNX file (run by onnxruntime: no pickled code is loaded), taking images
(N, C, H, W) and returning class scores (N, K) in the order of the run's classes. Images are
resized to its input size when that is fixed, converted between grey and colour, and mapped to the
value range it was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.errors import BrushworkError


def class_consistency(classifier: str | os.PathLike, images: torch.Tensor, labels: Sequence[int],
                      class_names: Sequence[str] | None = None, value_range: tuple[float, float] = (0.0, 1.0),
                      batch: int = 256) -> dict:  # fmt: skip
    """Share of ``images`` (N, C, H, W in 0..1) that ``classifier`` assigns to their ``labels``, overall
    and per class, with what the figure was measured on."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BrushworkError("a classifier check needs onnxruntime: pip install 'brushwork[export]'") from exc
    from brushwork.records import sha256_file

    path = Path(classifier)
    if not path.is_file():
        raise BrushworkError(f"{path}: no such classifier file")
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    if images.ndim != 4 or len(images) != len(labels) or not len(images):
        raise BrushworkError("need images (N, C, H, W) and one label for each")
    errors = _onnxruntime_errors(ort)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except errors as exc:
        raise BrushworkError(f"{path}: not an ONNX model onnxruntime can run ({exc})") from exc
    (spec,) = session.get_inputs()
    shape = spec.shape  # e.g. ['batch', 1, 28, 28]; symbolic sizes are strings
    if len(shape) != 4:
        raise BrushworkError(f"{path}: the classifier must take images (N, C, H, W), not {shape}")
    predicted = []
    for start in range(0, len(images), batch):
        x = _fit_input(images[start : start + batch].float(), shape, value_range)
        try:
            (scores,) = session.run(None, {spec.name: x.numpy()})
        except (errors, ValueError) as exc:
            raise BrushworkError(f"{path}: the classifier refused images of shape {tuple(x.shape)} ({exc})") from exc
        if scores.ndim != 2 or scores.shape[1] <= int(labels.max()):
            raise BrushworkError(f"{path}: gives scores of shape {scores.shape}; expected one per class")
        predicted.append(torch.from_numpy(np.argmax(scores, axis=1)))
    hits = torch.cat(predicted) == labels
    names = list(class_names) if class_names is not None else [str(i) for i in range(int(labels.max()) + 1)]
    per_class = {names[k]: round(float(hits[labels == k].float().mean()), 4) for k in labels.unique().tolist()}
    return {"class_consistency": round(float(hits.float().mean()), 4), "per_class": per_class,
            "classifier": path.name, "classifier_sha256": sha256_file(path), "samples": len(images)}  # fmt: skip


def _onnxruntime_errors(ort) -> tuple[type[Exception], ...]:
    """onnxruntime's own exception types (they derive from Exception directly)."""
    state = ort.capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NotImplemented",
             "RuntimeException")  # fmt: skip
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def _fit_input(x: torch.Tensor, shape: list, value_range: tuple[float, float]) -> torch.Tensor:
    channels, height, width = shape[1:]
    if isinstance(channels, int) and channels != x.shape[1]:
        if channels == 1:
            x = x.mean(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        else:
            raise BrushworkError(f"the classifier takes {channels} channels, the images have {x.shape[1]}")
    if isinstance(height, int) and isinstance(width, int) and (height, width) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    low, high = value_range
    return (x.clamp(0, 1) * (high - low) + low).contiguous()
