"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017).

A frozen backbone encodes content and style up to one layer; AdaIN gives the content features the
style's channel means and deviations; a trained decoder turns the result back into an image. Any
style image works at run time, with a strength (alpha), several styles mixed by weight, a spatial
mask between two styles, and colour preservation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from brushwork.backbones.base import FeatureExtractor
from brushwork.checkpoints import load_checkpoint, load_meta, module_state
from brushwork.errors import BrushworkError, finite_weights
from brushwork.media import image_to_tensor, paint_by_size, resize_long_side
from brushwork.settings import help_of, setting
from brushwork.style import color
from brushwork.style.feedforward import MIN_SIDE, ConvLayer, check_side
from brushwork.style.losses import channel_mean_std, mean_std_loss, relative_mse
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

KIND = "adain"
#: The layer each backbone is encoded to: VGG's relu4_1 as in the paper, Lite0's block at 1/8 scale.
ENCODER_LAYERS = {"vgg19": "relu4_1", "vgg16": "relu4_1", "lite0": "block4"}


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Content features with the style features' per-channel mean and standard deviation."""
    c_mean, c_std = channel_mean_std(content)
    s_mean, s_std = channel_mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


class Decoder(nn.Module):
    """Mirror of an encoder with ``channels`` outputs at 1/``2**stages`` scale: conv, upsample, conv per stage."""

    def __init__(self, channels: int, stages: int, width: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        ch = channels
        for i in range(stages):
            out = max(16, width >> i)
            layers += [ConvLayer(ch, out, 3), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest")]
            layers += [ConvLayer(out, out, 3), nn.ReLU()]
            ch = out
        layers.append(ConvLayer(ch, 3, 3))
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(features))


@dataclass
class AdainConfig(TrainingConfig):
    steps: int = setting(4000, help=help_of(TrainingConfig, "steps"), low=1, basic=True)
    learning_rate: float = setting(1e-4, help=help_of(TrainingConfig, "learning_rate"), low=0)  # the paper's
    encoder_layer: str | None = setting(
        None, help="backbone layer to encode to (default relu4_1 for VGG, block4 for Lite0)"
    )
    decoder_width: int = setting(256, help="channels of the decoder's first layer", low=16, high=1024)

    def validate(self) -> None:
        extra = [(16 <= self.decoder_width <= 1024, "decoder width must be 16..1024")]
        self.check(("content_weight", "style_weight"), extra)


class AdainModel(nn.Module):
    """Encoder (frozen backbone, cut at one layer) + decoder. ``forward`` is what ONNX export traces."""

    def __init__(self, backbone: FeatureExtractor, layer: str, decoder_width: int = 256):
        super().__init__()
        backbone.check_layers([layer])
        self.backbone = backbone
        self.layer = layer
        with torch.no_grad():
            probe = backbone(torch.zeros(1, 3, 64, 64), [layer])[layer]
        stages = round(math.log2(64 / probe.shape[-1]))
        self.stride = 2**stages
        self.decoder = Decoder(probe.shape[1], stages, decoder_width)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image, [self.layer])[self.layer]

    def decode(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # Always resized (exact identity when the size already matches): a branch on the size would be
        # frozen by ONNX export at the traced size, and sizes that are not multiples of the stride would differ.
        return F.interpolate(self.decoder(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        c = self.encode(content)
        t = adain(c, self.encode(style))
        if alpha is not None:
            t = alpha * t + (1 - alpha) * c
        return self.decode(t, content.shape[-2:])


def train_adain(
    content_dir: str | os.PathLike,
    style_dir: str | os.PathLike,
    output: str | os.PathLike,
    backbone: FeatureExtractor,
    config: AdainConfig | None = None,
    device: torch.device | str = "cpu",
    resume: bool = False,
    resume_steps: int | None = None,
    on_step: Callable[[TrainStep], None] | None = None,
) -> Path:
    """Train the decoder on content and style folders; checkpoints to ``output`` (.safetensors + .json)."""
    output = Path(output)
    device = torch.device(device)
    cfg = config or AdainConfig()
    start = 0
    if resume:
        tensors, meta, cfg, start = load_for_resume(output, KIND, AdainConfig, resume_steps)
        _check_backbone(meta, backbone, output)
    cfg.validate()
    layer = cfg.encoder_layer or ENCODER_LAYERS.get(backbone.name, backbone.content_layers[-1])
    style_layers = list(cfg.style_layers or backbone.style_layers)
    backbone.check_layers([layer, *style_layers])
    cfg.encoder_layer = layer
    contents = ImageFolder(content_dir, cfg.image_size, "content")
    styles = ImageFolder(style_dir, cfg.image_size, "style")

    rng = seeded(cfg.seed)
    model = AdainModel(backbone, layer, cfg.decoder_width).to(device)
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=cfg.learning_rate)
    state = TrainingState({"decoder": model.decoder}, {"optim": optimizer}, rng)
    if resume:
        state.restore(output, tensors, meta)
    layers = list(dict.fromkeys([layer, *style_layers]))
    meta_base = {"kind": KIND, "config": asdict(cfg), **_backbone_fingerprint(backbone)}

    def train_step() -> dict[str, torch.Tensor]:
        content = contents.batch(cfg.batch_size, rng).to(device)
        style = styles.batch(cfg.batch_size, rng).to(device)
        with torch.no_grad():
            target = adain(model.encode(content), model.encode(style))
            style_feats = backbone(style, style_layers)
            style_stats = {k: channel_mean_std(v) for k, v in style_feats.items()}
        out = model.decode(target, content.shape[-2:])
        feats = backbone(out, layers)
        parts = {
            "content": cfg.content_weight * relative_mse(feats[layer], target),
            "style": cfg.style_weight * mean_std_loss(feats, style_stats),
        }
        optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        optimizer.step()
        return parts

    def checkpoint(step: int, final: bool) -> None:
        state.save(output, {**meta_base, "step": step, "complete": final,
                            "skipped_images": contents.unreadable + styles.unreadable})  # fmt: skip

    model.decoder.train()
    run_training(train_step, start, cfg.steps, checkpoint, cfg.checkpoint_every, on_step)
    return output


def _backbone_fingerprint(backbone: FeatureExtractor) -> dict:
    """Enough to tell, at apply time, whether the backbone is the one the decoder was trained on."""
    first = next(iter(backbone.parameters()))
    return {"backbone": backbone.name, "backbone_check": round(float(first.double().abs().sum()), 4)}


def encoder_name(path: str | os.PathLike, requested: str = "auto", weights: str | None = None) -> str:
    """The backbone to load for applying the model at ``path``: the one asked for, except that ``auto``
    without a weights file takes the model's own encoder when that needs no file (Lite0), since a
    decoder only works on the encoder it was trained on."""
    if requested == "auto" and weights is None and load_meta(path, KIND).get("backbone") == "lite0":
        return "lite0"
    return requested


def _check_backbone(meta: dict, backbone: FeatureExtractor, path: Path) -> None:
    expected = {k: meta.get(k) for k in ("backbone", "backbone_check")}
    if _backbone_fingerprint(backbone) != expected:
        raise BrushworkError(
            f"{path}: its decoder was trained on the {meta.get('backbone')} backbone with other weights; "
            f"load the same backbone (--backbone {meta.get('backbone')} and the same --weights)"
        )


def load_adain(path: str | os.PathLike, backbone: FeatureExtractor, device: torch.device | str = "cpu") -> AdainModel:
    tensors, meta = load_checkpoint(path, KIND)
    _check_backbone(meta, backbone, Path(path))
    cfg = valid_stored_config(AdainConfig, meta, path)
    if not cfg.encoder_layer:
        raise BrushworkError(f"{path}: its settings name no encoder layer")
    model = AdainModel(backbone, cfg.encoder_layer, cfg.decoder_width)
    try:
        model.decoder.load_state_dict(module_state(tensors, "decoder"))
    except RuntimeError as exc:
        raise BrushworkError(f"{path}: decoder weights do not match its settings") from exc
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def apply_adain(
    model: AdainModel,
    contents: Sequence[Image.Image],
    styles: Sequence[Image.Image],
    weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    mask: Image.Image | None = None,
    preserve_colors: str = "none",
    image_size: int | None = None,
    style_size: int | None = None,
    device: torch.device | str = "cpu",
) -> list[Image.Image]:
    """Stylise each photo with any style(s).

    ``weights`` mix several styles' AdaIN targets; with ``mask`` (white = first style, black =
    second) exactly two styles are painted into the two regions. ``alpha`` 0 reconstructs the photo,
    1 is full style. ``preserve_colors``: ``luminance`` keeps the photo's colours afterwards,
    ``histogram`` gives each style image the photo's colour statistics first. Photos of one size go
    through the network as one batch (what a GPU wants), each result the same as its own run.
    """
    if not styles:
        raise BrushworkError("at least one style image is needed")
    if not 0 <= alpha <= 1:
        raise BrushworkError("alpha must be between 0 and 1")
    if preserve_colors not in color.MODES:
        raise BrushworkError(f"colour preservation must be one of {', '.join(color.MODES)}")
    if weights is None:
        weights = [1.0] * len(styles)
    finite_weights(weights, "style blend weights")
    if len(weights) != len(styles):
        raise BrushworkError(f"{len(styles)} styles need as many weights, >= 0 and not all zero")
    if mask is not None and len(styles) != 2:
        raise BrushworkError("a mask splits the image between exactly two styles")
    smallest = MIN_SIDE * model.stride // 4
    check_side(image_size, "image size")
    check_side(style_size, "style size")
    if style_size is not None and style_size < smallest:
        raise BrushworkError(f"style size must be at least {smallest} px for this model, not {style_size}")
    photos = [resize_long_side(content, image_size) if image_size is not None else content for content in contents]
    for photo in photos:
        if min(photo.size) < smallest:
            raise BrushworkError(f"image of {photo.width}x{photo.height} px is too small for this model")
    return paint_by_size(
        photos,
        lambda x: _adain_batch(model, x, styles, weights, alpha, mask, preserve_colors, style_size, smallest),
        device,
    )


def _adain_batch(model: AdainModel, x: torch.Tensor, styles: Sequence[Image.Image], weights: Sequence[float],
                 alpha: float, mask: Image.Image | None, preserve_colors: str, style_size: int | None,
                 smallest: int) -> torch.Tensor:  # fmt: skip
    """Photos of one size (a batch ``x``) painted with the styles; each style is encoded once for the batch
    (once per photo with ``histogram``, whose style images take each photo's colours)."""
    c = model.encode(x)
    targets = []
    for style in styles:
        s = resize_long_side(style, style_size or max(x.shape[-2:]))
        if min(s.size) < smallest:
            raise BrushworkError(f"style image of {s.width}x{s.height} px is too small for this model")
        s = image_to_tensor(s).to(x.device)
        if preserve_colors == "histogram":
            s = torch.cat([color.match_color_statistics(s.cpu(), x[k : k + 1].cpu()) for k in range(len(x))]).to(x)
        targets.append(adain(c, model.encode(s)))  # one style's statistics broadcast over the batch
    if mask is not None:
        m = image_to_tensor(mask.convert("L").convert("RGB"))[:, :1].to(x.device)
        m = F.interpolate(m, size=c.shape[-2:], mode="bilinear", align_corners=False)
        t = m * targets[0] + (1 - m) * targets[1]
    else:
        total = sum(weights)
        t = sum(w / total * target for w, target in zip(weights, targets, strict=True))
    t = alpha * t + (1 - alpha) * c
    y = model.decode(t, x.shape[-2:])
    if preserve_colors == "luminance":
        y = color.luminance_transfer(y, x)
    return y
