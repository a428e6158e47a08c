"""ONNX export of the style networks, checked against onnxruntime.

Needs the ``export`` extra (onnx, onnxscript; onnxruntime to verify): ``pip install brushwork[export]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write

OPSET = 18


def export_onnx(
    net: nn.Module, path: str | os.PathLike, examples: tuple[torch.Tensor, ...], input_names: list[str]
) -> Path:
    """Write ``net`` as ONNX with batch, height and width of every image input left dynamic; atomic."""
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it
    except ImportError as exc:
        raise BrushworkError("ONNX export needs: pip install 'brushwork[export]' (onnx, onnxscript)") from exc
    path = Path(path)
    batch = torch.export.Dim("batch", min=1, max=1024)
    # Each input gets its own height and width: a style image need not match the photo's size.
    dynamic = tuple(
        {
            0: batch,
            2: torch.export.Dim(f"height{i}", min=8, max=16384),
            3: torch.export.Dim(f"width{i}", min=8, max=16384),
        }
        for i in range(len(examples))
    )
    with _quiet_exporter():
        program = torch.onnx.export(
            net.cpu().eval(), examples, input_names=input_names, output_names=["stylised"],
            dynamic_shapes=dynamic, dynamo=True, opset_version=OPSET, verbose=False,
        )  # fmt: skip
    return atomic_write(path, program.save)


#: What torch's exporter says that is no news to a user: it registers torchvision's operators when it can
#: (brushwork's networks use none), and a deprecation inside torch's own pytree code.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"
_NOT_NEWS = "torchvision is not installed"


class _DropNotNews(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _NOT_NEWS not in record.getMessage()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence those two, and only those, for the export call; every other warning still shows."""
    logger, drop = logging.getLogger(_REGISTRATION_LOGGER), _DropNotNews()
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            yield
    finally:
        logger.removeFilter(drop)


def max_difference(net: nn.Module, path: str | os.PathLike, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between PyTorch and onnxruntime on ``inputs``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BrushworkError("checking an ONNX model needs onnxruntime (pip install onnxruntime)") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        torch_out = net.cpu().eval()(*inputs.values()).numpy()
    return float(np.abs(onnx_out - torch_out).max())
