"""DCGAN-family generator and discriminator, optionally class-conditional.

Generator: a 4x4 start from the latent, then upsampling blocks (nearest + conv, or transposed conv)
with batch norm. The discriminator uses spectral normalisation. Three ways to condition on a class:

- ``projection`` (default; Miyato & Koyama 2018): class-conditional batch norm in G (a per-class gain
  and bias); D adds the inner product of a class embedding with its features to the score.
- ``concat`` (classic cGAN, Mirza & Osindero 2014): a one-hot label appended to G's latent and to
  D's input as constant planes.
- ``acgan`` (Odena et al. 2017): conditional batch norm in G; D has a second head that classifies,
  trained with cross-entropy on real and generated images.

Widths double towards the 4x4 end and are capped at ``MAX_WIDTH``: uncapped, 64 px at width 64
would start from 1024 channels, which costs much and buys little.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

RESOLUTIONS = (32, 64, 128)
CONDITIONING = ("projection", "concat", "acgan")
MAX_WIDTH = 512


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias come from the class (identity-initialised)."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=classes == 0)
        self.classes = classes
        if classes:
            self.gain = nn.Embedding(classes, channels)
            self.bias = nn.Embedding(classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x)
        if self.classes:
            x = x * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]
        return x


class UpBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, classes: int, upsample: str):
        super().__init__()
        if upsample == "resize":
            # Nearest-neighbour resize then conv: no checkerboard from uneven kernel overlap.
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, 1, 1))
        else:
            self.up = nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1)
        self.norm = ConditionalBatchNorm(out_ch, classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return torch.relu(self.norm(self.up(x), labels))


class Generator(nn.Module):
    def __init__(self, resolution: int = 32, channels: int = 1, latent: int = 128, width: int = 64,
                 classes: int = 0, upsample: str = "resize", conditioning: str = "projection"):  # fmt: skip
        super().__init__()
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}")
        self.latent, self.classes = latent, classes
        self.concat = conditioning == "concat" and classes > 0
        norm_classes = 0 if self.concat else classes
        blocks = int(math.log2(resolution // 4))
        widths = [min(width * 2 ** (blocks - i), MAX_WIDTH) for i in range(blocks + 1)]  # e.g. 512, 256, 128, 64
        self.project = nn.Linear(latent + (classes if self.concat else 0), widths[0] * 16)
        self.norm0 = ConditionalBatchNorm(widths[0], norm_classes)
        self.blocks = nn.ModuleList(UpBlock(widths[i], widths[i + 1], norm_classes, upsample) for i in range(blocks))
        self.to_image = nn.Conv2d(widths[-1], channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.concat:
            z = torch.cat([z, F.one_hot(labels, self.classes).to(z.dtype)], 1)
        x = self.project(z).view(z.shape[0], -1, 4, 4)
        x = torch.relu(self.norm0(x, labels))
        for block in self.blocks:
            x = block(x, labels)
        return torch.tanh(self.to_image(x))  # -1..1


class Discriminator(nn.Module):
    """``forward`` returns (real/fake score, class logits); the logits only with ``acgan``, else None."""

    def __init__(self, resolution: int = 32, channels: int = 1, width: int = 64, classes: int = 0,
                 conditioning: str = "projection"):  # fmt: skip
        super().__init__()
        self.classes = classes
        self.conditioning = conditioning if classes else "none"
        blocks = int(math.log2(resolution // 4))
        layers: list[nn.Module] = []
        ch = channels + (classes if self.conditioning == "concat" else 0)
        for i in range(blocks):
            out = min(width * 2**i, MAX_WIDTH)
            layers += [spectral_norm(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch = out
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(ch * 16, 1))
        if self.conditioning == "projection":
            self.embed = spectral_norm(nn.Embedding(classes, ch * 16))
        elif self.conditioning == "acgan":
            self.classify = spectral_norm(nn.Linear(ch * 16, classes))

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.conditioning == "concat":
            planes = F.one_hot(labels, self.classes).to(images.dtype)[:, :, None, None]
            images = torch.cat([images, planes.expand(-1, -1, *images.shape[2:])], 1)
        h = self.features(images).flatten(1)
        out = self.score(h).squeeze(1)
        if self.conditioning == "projection":
            out = out + (self.embed(labels) * h).sum(1)
        return out, self.classify(h) if self.conditioning == "acgan" else None
