"""3x3 convolutions of a frozen network through NNPACK's Winograd kernels on the CPU.

PyTorch sends a batch-of-one 3x3 convolution to oneDNN's direct kernels; it only picks NNPACK's
Winograd F(6x6, 3x3) kernels (5x fewer multiplications in their product stage) for batches of 16
or more. Style transfer runs one image through VGG with a gradient to the pixels, so on the CPU most
of an iteration is those direct kernels, forward and backward. This module calls NNPACK for both:
the gradient to the input of a stride-1, padding-1 3x3 convolution is itself such a convolution,
with the kernel flipped and its in/out channels swapped. Measured in docs/benchmarks.md
("Winograd convolutions on the CPU").

On the 2-core AVX2 benchmark machine NNPACK was 1.7-2.4x faster on 64x64 maps and larger, about
even at 32x32 and 2x slower at 16x16, so by default (``on``) it takes every eligible layer with at
least 48x48 positions: a fixed rule, so a seed gives the same image run after run. ``auto`` instead
times each shape once both ways and keeps the faster, as ``cudnn.benchmark`` does on GPUs: the
choice for an unfamiliar processor, at the price of that reproducibility (a close timing can go
either way, and the two kernels round differently). Winograd's rounding differs from direct
convolution's by ~1e-5 relative per layer; a frozen feature extractor driving an optimiser does not
see it. Layers whose weights are being trained, exported graphs and other devices keep PyTorch's
own convolution.

``BRUSHWORK_WINOGRAD``: ``on`` (default), ``auto`` or ``off``.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("on", "auto", "off")

#: Feature maps smaller than this take PyTorch's path: NNPACK was no faster on any such shape timed.
MIN_POSITIONS = 48 * 48

#: Side of the largest square a shape is timed on in ``auto`` mode.
TIMING_SIDE = 256

#: NNPACK's 3x3 Winograd works on 8x8 input tiles that give 6x6 outputs.
_TILE_IN, _TILE_OUT = 8, 6


def _mode_from_environment() -> str:
    value = os.environ.get("BRUSHWORK_WINOGRAD", "on").strip().lower()
    return {"1": "on", "0": "off"}.get(value, value if value in MODES else "on")


_mode = _mode_from_environment()
#: (batch, in channels, out channels, log2 of positions) -> NNPACK was the faster one.
_nnpack_faster: dict[tuple[int, int, int, int], bool] = {}


def set_winograd(mode: str) -> None:
    """``on``, ``auto`` or ``off`` for this process (benchmarks and tests compare them)."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"winograd mode must be one of {MODES}, not {mode!r}")
    _mode = mode


@functools.cache
def nnpack_ready() -> bool:
    # Also initialises NNPACK: until this has been called, every NNPACK convolution fails.
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def _seconds(run: Callable[[], object]) -> float:
    run()  # the first call allocates (NNPACK's workspace, oneDNN's primitive)
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


class _WinogradConv3x3(torch.autograd.Function):
    """Forward and input gradient through NNPACK; the weights get no gradient (they are frozen)."""

    @staticmethod
    def forward(ctx, x, conv):
        # The layer, not its flipped kernel, is kept for backward: autograd's saved tensors are
        # then only activations, which is what the tiler's memory probe counts per pixel.
        ctx.conv = conv
        return torch._nnpack_spatial_convolution(x.contiguous(), conv.weight, conv.bias, [1, 1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        flipped = ctx.conv.weight_for_input_grad()
        return torch._nnpack_spatial_convolution(grad_out.contiguous(), flipped, None, [1, 1]), None


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride-1, padding-1 ``nn.Conv2d`` (same parameters and state-dict keys) that takes
    the NNPACK path when it applies and is faster, and PyTorch's convolution otherwise."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1)
        self._flipped: torch.Tensor | None = None
        self._flipped_key: tuple[int, int] | None = None

    def weight_for_input_grad(self) -> torch.Tensor:
        """The kernel flipped in space with in/out channels swapped."""
        # Recomputed only when the weights change (loading a checkpoint bumps their version).
        key = (self.weight.data_ptr(), self.weight._version)
        if self._flipped_key != key:
            self._flipped = self.weight.detach().flip(2, 3).transpose(0, 1).contiguous()
            self._flipped_key = key
        return self._flipped

    def applies(self, x: torch.Tensor) -> bool:
        """Whether NNPACK can stand in for this call (speed aside)."""
        return (
            _mode != "off"
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            and x.shape[-2] * x.shape[-1] >= MIN_POSITIONS
            and not self.weight.requires_grad
            and not (self.bias is not None and self.bias.requires_grad)
            and nnpack_ready()
            # Exported graphs (ONNX, torch.export) need the standard operator, not NNPACK's.
            and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
        )

    def _faster_with_nnpack(self, x: torch.Tensor) -> bool:
        if _mode != "auto":
            return True
        # Timed on at most a TIMING_SIDE square: larger maps only repeat the same work, and a
        # 1024 px image would otherwise spend seconds per layer on timing.
        probe = x.detach()[..., :TIMING_SIDE, :TIMING_SIDE].contiguous()
        # Shapes within a factor of two in area share one timing: tiles and scales differ a little.
        key = (x.shape[0], self.in_channels, self.out_channels, round(math.log2(probe.shape[-2] * probe.shape[-1])))
        if key not in _nnpack_faster:
            with torch.no_grad():
                direct = _seconds(lambda: F.conv2d(probe, self.weight, self.bias, padding=1))
                nnpack = _seconds(lambda: torch._nnpack_spatial_convolution(probe, self.weight, self.bias, [1, 1]))
            _nnpack_faster[key] = nnpack < direct
        return _nnpack_faster[key]

    def scratch_bytes(self, x: torch.Tensor) -> int:
        """NNPACK's workspace for this input: the Winograd transforms of input and output tiles.
        One buffer, kept and reused by every later call, so a step's peak holds the largest."""
        if not self.applies(x):
            return 0
        tiles = math.ceil(x.shape[-2] / _TILE_OUT) * math.ceil(x.shape[-1] / _TILE_OUT)
        return 4 * _TILE_IN**2 * tiles * (self.in_channels + self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.applies(x) and self._faster_with_nnpack(x):
            return _WinogradConv3x3.apply(x, self)
        return F.conv2d(x, self.weight, self.bias, padding=1)
