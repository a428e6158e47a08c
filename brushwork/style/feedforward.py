"""Per-style feed-forward networks (Johnson, Alahi & Fei-Fei 2016): train once, stylise in milliseconds.

The image transformation network (``TransformerNet``) is trained with the same perceptual losses
as the optimisation engine (``style/losses.py``) on a folder of content photos, against one style
image. Instance normalisation (Ulyanov et al.) and nearest-neighbour upsampling followed by a
convolution (no transposed convolutions, hence no checkerboard) are used throughout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from brushwork.backbones.base import FeatureExtractor
from brushwork.checkpoints import load_checkpoint, module_state
from brushwork.errors import BrushworkError
from brushwork.media import image_to_tensor, paint_by_size, resize_long_side
from brushwork.settings import setting
from brushwork.style import color
from brushwork.style.losses import content_loss, gram_matrix, style_loss, tv_loss
from brushwork.training import (
    ImageFolder,
    TrainingConfig,
    TrainingState,
    TrainStep,
    load_for_resume,
    run_training,
    seeded,
    valid_stored_config,
)

KIND = "fast-style"


class ConvLayer(nn.Sequential):
    """Reflection padding keeps the borders free of the dark frame zero padding paints."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3):
        super().__init__()
        self.conv = ConvLayer(in_ch, out_ch, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


MIN_SIDE = 8
#: Longest side a trained network is applied at: beyond it the activations alone take tens of GB.
MAX_SIDE = 8192


def check_side(size: int | None, what: str) -> None:
    """A long side to resize to: None (keep the image's) or MIN_SIDE..MAX_SIDE px; 0 is not 'unset'."""
    if size is not None and not (isinstance(size, int) and MIN_SIDE <= size <= MAX_SIDE):
        raise BrushworkError(f"{what} must be {MIN_SIDE}..{MAX_SIDE} px, not {size}")


class TransformerNet(nn.Module):
    """RGB 0..1 in, RGB 0..1 out, any size from 8 px (padded to a multiple of 4 inside, cropped back)."""

    def __init__(self, width: int = 32, residual_blocks: int = 5):
        super().__init__()
        w = width

        def norm_relu(ch: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(ch, affine=True), nn.ReLU()]

        self.encoder = nn.Sequential(
            ConvLayer(3, w, 9), *norm_relu(w), ConvLayer(w, 2 * w, 3, 2), *norm_relu(2 * w),
            ConvLayer(2 * w, 4 * w, 3, 2), *norm_relu(4 * w),
        )  # fmt: skip
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(residual_blocks)])
        self.decoder = nn.Sequential(
            UpsampleConv(4 * w, 2 * w), *norm_relu(2 * w), UpsampleConv(2 * w, w), *norm_relu(w), ConvLayer(w, 3, 9),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No branch on the size: an exported (ONNX) graph must pad and crop for every input shape.
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
        y = self.decoder(self.residuals(self.encoder(x * 2 - 1)))
        return torch.sigmoid(y[..., :h, :w])


@dataclass
class FastConfig(TrainingConfig):
    """Training settings, stored beside the weights so apply and resume rebuild the same network."""

    width: int = setting(32, help="channels of the network's first layer (more: slower, finer)", low=1, high=256)
    residual_blocks: int = setting(5, help="residual blocks in the middle of the network", low=0, high=32)
    tv_weight: float = setting(5.0, help="smoothness (total variation)", low=0)
    style_scale: float = setting(1.0, help="style image size relative to the crops")
    content_layers: list[str] | None = setting(
        None, help="backbone layers for the content loss (default: the backbone's)"
    )

    def validate(self) -> None:
        extra = [
            (1 <= self.width <= 256, "width must be 1..256"),
            (0 <= self.residual_blocks <= 32, "residual blocks must be 0..32"),
            (16 <= self.image_size * self.style_scale <= 4096, "style scale puts the style image outside 16..4096 px"),
        ]
        self.check(("content_weight", "style_weight", "tv_weight"), extra)


def train_feedforward(
    style: Image.Image,
    content_dir: str | os.PathLike,
    output: str | os.PathLike,
    backbone: FeatureExtractor,
    config: FastConfig | None = None,
    device: torch.device | str = "cpu",
    resume: bool = False,
    resume_steps: int | None = None,
    on_step: Callable[[TrainStep], None] | None = None,
    style_info: dict | None = None,
) -> Path:
    """Train a TransformerNet for ``style``; checkpoints go to ``output`` (.safetensors + .json).

    With ``resume``, the settings, weights, optimiser and data order come from ``output`` and
    ``config`` is ignored; ``resume_steps`` raises the total number of steps.
    """
    output = Path(output)
    device = torch.device(device)
    cfg = config or FastConfig()
    step = 0
    if resume:
        tensors, meta, cfg, step = load_for_resume(output, KIND, FastConfig, resume_steps)
    cfg.validate()
    content_layers = list(cfg.content_layers or backbone.content_layers)
    style_layers = list(cfg.style_layers or backbone.style_layers)
    backbone.check_layers(content_layers + style_layers)
    backbone = backbone.to(device)
    data = ImageFolder(content_dir, cfg.image_size)

    rng = seeded(cfg.seed)
    net = TransformerNet(cfg.width, cfg.residual_blocks).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    state = TrainingState({"net": net}, {"optim": optimizer}, rng)
    if resume:
        state.restore(output, tensors, meta)

    with torch.no_grad():
        style_t = image_to_tensor(resize_long_side(style, round(cfg.image_size * cfg.style_scale))).to(device)
        style_targets = {k: gram_matrix(v) for k, v in backbone(style_t, style_layers).items()}
    layers = list(dict.fromkeys(content_layers + style_layers))
    meta_base = {"kind": KIND, "config": asdict(cfg), "backbone": backbone.name, "style": style_info or {}}

    def train_step() -> dict[str, torch.Tensor]:
        batch = data.batch(cfg.batch_size, rng).to(device)
        with torch.no_grad():
            content_targets = backbone(batch, content_layers)
        out = net(batch)
        feats = backbone(out, layers)
        parts = {
            "content": cfg.content_weight * content_loss(feats, content_targets),
            "style": cfg.style_weight * style_loss(feats, style_targets),
            "tv": cfg.tv_weight * tv_loss(out),
        }
        optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        optimizer.step()
        return parts

    def checkpoint(step: int, final: bool) -> None:
        state.save(output, {**meta_base, "step": step, "complete": final, "skipped_images": data.unreadable})

    net.train()
    run_training(train_step, step, cfg.steps, checkpoint, cfg.checkpoint_every, on_step)
    return output


def load_feedforward(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[TransformerNet, dict]:
    tensors, meta = load_checkpoint(path, KIND)
    cfg = valid_stored_config(FastConfig, meta, path)
    net = TransformerNet(cfg.width, cfg.residual_blocks)
    try:
        net.load_state_dict(module_state(tensors, "net"))
    except RuntimeError as exc:
        raise BrushworkError(f"{path}: weights do not match the network its settings describe") from exc
    return net.to(device).eval().requires_grad_(False), meta


@torch.no_grad()
def apply_feedforward(
    net: TransformerNet,
    images: Sequence[Image.Image],
    strength: float = 1.0,
    preserve_colors: str = "none",
    image_size: int | None = None,
    device: torch.device | str = "cpu",
) -> list[Image.Image]:
    """Stylise each image; ``strength`` blends with the photo (0 = photo, 1 = full style).

    Pictures of the same size go through as one batch (one forward pass: what a GPU wants). Instance
    norm keeps the pictures of a batch apart, so each result equals its own run."""
    if not 0 <= strength <= 1:  # also refuses NaN
        raise BrushworkError(f"strength must be between 0 and 1, not {strength}")
    if preserve_colors not in color.MODES:
        raise BrushworkError(f"preserve colors must be one of {', '.join(color.MODES)}, not {preserve_colors!r}")
    check_side(image_size, "image size")
    photos = [resize_long_side(image, image_size) if image_size else image for image in images]
    for photo in photos:
        if min(photo.size) < MIN_SIDE:
            raise BrushworkError(f"image of {photo.width}x{photo.height} px is too small "
                                 f"(at least {MIN_SIDE} px a side)")  # fmt: skip

    def paint(x: torch.Tensor) -> torch.Tensor:
        y = net(x)
        if preserve_colors == "luminance":
            y = color.luminance_transfer(y, x)
        elif preserve_colors == "histogram":
            # A trained style has no style image to recolour: the stylised picture takes the photo's colour
            # statistics instead, before the blend with the photo.
            y = torch.cat([color.match_color_statistics(y[k : k + 1].cpu(), x[k : k + 1].cpu()).to(y)
                           for k in range(len(x))])  # fmt: skip
        return strength * y + (1 - strength) * x

    return paint_by_size(photos, paint, device)
