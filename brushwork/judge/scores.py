"""Scores of a style-transfer output against its content photo and its style painting.

Every figure is a distance (0 = identical; lower is closer), measured on brushwork's own offline
backbone (Lite0 by default), so none is the published metric of the same spirit:

* ``content_distance``: the relative feature error at the backbone's content layers,
  ||F(out) - F(photo)||² / ||F(photo)||², the content term the engines optimise. Not LPIPS, whose
  backbone weights cannot be fetched offline; ``lpips_vgg`` is added when the user gives LPIPS
  linear-layer weights and VGG-16 weights (see :class:`LpipsVgg`).
* ``style_distance``: a mean-covariance distance at the style layers: the Fréchet distance between
  Gaussians fitted to the two images' feature vectors (one per position), relative to the style's
  second moment, averaged over layers. It compares the distributions of local features, as ArtFID's
  FID does for whole images, and does not need the two images to have the same layout.
* ``gram_distance``: the relative Gram-matrix error at the style layers (Gatys's style term).
* ``colour_distance``: patch-level colour histograms: for each patch of the output, the total-variation
  distance from its 4×4×4 RGB histogram to the nearest patch histogram of the style, averaged.
* ``artfid_lite0 = (1 + content_distance) × (1 + style_distance)``: ArtFID's combination (Wright &
  Ommer 2022) on these offline distances. It is **not the paper's ArtFID** (which uses LPIPS and an
  art-trained Inception's FID over a set of outputs); use it to compare outputs with each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import IMAGE_FILE_SUFFIXES

#: Long side, in pixels, at which every image is scored (bounds time and memory).
SCORE_SIZE = 256
PATCH = 32
BINS = 4
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


@dataclass
class StyleScore:
    path: str
    content_distance: float
    style_distance: float
    gram_distance: float
    colour_distance: float
    artfid_lite0: float
    lpips_vgg: float | None = None
    #: Videos only (the style figures are then of the middle frame): the output's frame-to-frame change
    #: relative to the source's (1.0 = no added flicker), and its mean change along the source's motion.
    flicker: float | None = None
    temporal_error: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _relative(value: torch.Tensor, target: torch.Tensor) -> float:
    return float((value - target).pow(2).sum() / (target.pow(2).sum() + 1e-12))


def _positions(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (H·W, C) float64: one sample per position."""
    return features[0].flatten(1).T.double()


def mean_covariance_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to position features a and b (N, C), relative to b's
    second moment |μ_b|² + tr Σ_b (so layers of any width and scale are comparable)."""
    from brushwork.judge.distribution import frechet_distance

    mu, cov = b.mean(0), torch.cov(b.T) if len(b) > 1 else torch.zeros(b.shape[1], b.shape[1], dtype=b.dtype)
    return max(frechet_distance(a, b), 0.0) / float(mu.square().sum() + cov.trace() + 1e-12)


def patch_histograms(image: torch.Tensor, patch: int = PATCH, bins: int = BINS) -> torch.Tensor:
    """(1, 3, H, W) in 0..1 -> (patches, bins³) joint RGB histograms, each summing to 1."""
    q = (image[0].clamp(0, 1) * bins).long().clamp(max=bins - 1)
    codes = (q[0] * bins + q[1]) * bins + q[2]  # (H, W)
    h, w = codes.shape
    ph, pw = max(1, h // patch), max(1, w // patch)
    codes = codes[: ph * patch, : pw * patch] if h >= patch and w >= patch else codes
    size_h, size_w = codes.shape[0] // ph, codes.shape[1] // pw
    tiles = codes[: ph * size_h, : pw * size_w].reshape(ph, size_h, pw, size_w).permute(0, 2, 1, 3).reshape(ph * pw, -1)
    hist = F.one_hot(tiles, bins**3).double().mean(1)
    return hist


def colour_histogram_distance(image: torch.Tensor, style: torch.Tensor) -> float:
    """Mean over ``image``'s patches of the total-variation distance to the nearest ``style`` patch."""
    a, b = patch_histograms(image), patch_histograms(style)
    return float((0.5 * torch.cdist(a, b, p=1)).min(1).values.mean())


class StyleScorer:
    """Scores outputs against one content photo and one style painting (targets computed once)."""

    def __init__(self, content: Image.Image, style: Image.Image, network: torch.nn.Module | None = None,
                 size: int = SCORE_SIZE, lpips: LpipsVgg | None = None):  # fmt: skip
        from brushwork.media import image_to_tensor, resize_long_side

        if network is None:
            from brushwork.backbones import load_backbone

            network = load_backbone("lite0")
        self.network = network.eval()
        self.content_layers = tuple(network.content_layers)
        self.style_layers = tuple(network.style_layers)
        self.size = size
        self.lpips = lpips
        self.content = image_to_tensor(resize_long_side(content, size))
        self.style = image_to_tensor(resize_long_side(style, size))
        self._content_features = self._features(self.content)
        self._style_features = self._features(self.style)

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.network(x, tuple(dict.fromkeys(self.content_layers + self.style_layers)))

    @torch.no_grad()
    def score(self, output: Image.Image, path: str = "<image>") -> StyleScore:
        from brushwork.media import image_to_tensor
        from brushwork.style.losses import gram_matrix

        # Compared at the photo's own shape, position by position.
        x = image_to_tensor(output.convert("RGB").resize(self.content.shape[-1:-3:-1], Image.Resampling.LANCZOS))
        features = self._features(x)
        content = sum(_relative(features[n], self._content_features[n]) for n in self.content_layers)
        content /= len(self.content_layers)
        style = sum(
            mean_covariance_distance(_positions(features[n]), _positions(self._style_features[n]))
            for n in self.style_layers
        ) / len(self.style_layers)
        gram = sum(
            _relative(gram_matrix(features[n]), gram_matrix(self._style_features[n])) for n in self.style_layers
        ) / len(self.style_layers)
        colour = colour_histogram_distance(x, self.style)
        lpips = self.lpips(x, self.content) if self.lpips is not None else None
        return StyleScore(path, content, style, gram, colour, (1 + content) * (1 + style), lpips)


def image_files(inputs: Sequence[str | os.PathLike], suffixes: tuple[str, ...] = IMAGE_FILE_SUFFIXES) -> list[Path]:
    """Files and folders (their images, or files with ``suffixes``, sorted) -> paths."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in suffixes and p.is_file())
            if not found:
                raise BrushworkError(f"{item}: nothing to score in this folder ({', '.join(suffixes)})")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise BrushworkError(f"{item}: no such file or folder")
    return paths


def score_outputs(outputs: Sequence[str | os.PathLike], content: str | os.PathLike, style: str | os.PathLike,
                  network: torch.nn.Module | None = None, size: int = SCORE_SIZE,
                  lpips: LpipsVgg | None = None) -> list[StyleScore]:  # fmt: skip
    """Score each output (files or folders), best (lowest ``artfid_lite0``) first. When ``content`` is a
    video, the outputs are its stylised versions: their middle frames are scored against the source's,
    and their flicker and temporal error are measured against the source."""
    from brushwork.media import load_image

    if _is_video(content):
        return _score_videos(image_files(outputs, VIDEO_SUFFIXES), Path(content), load_image(style), network, size,
                             lpips)  # fmt: skip
    scorer = StyleScorer(load_image(content), load_image(style), network, size, lpips)
    scores = [scorer.score(load_image(p), str(p)) for p in image_files(outputs)]
    return sorted(scores, key=lambda s: s.artfid_lite0)


def _is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _score_videos(outputs: list[Path], source: Path, style: Image.Image, network, size: int, lpips) -> list[StyleScore]:
    from brushwork.judge.temporal import measure_flicker, measure_temporal_error
    from brushwork.media import read_frames, require_av

    av = require_av()  # a clear error when the video extra is not installed

    def middle_frame(path: Path) -> Image.Image:
        if not path.is_file():
            raise BrushworkError(f"{path}: no such file")
        try:
            frames = read_frames(path)
        except av.FFmpegError as exc:
            raise BrushworkError(f"{path}: not a video brushwork can read ({exc})") from exc
        if not frames:
            raise BrushworkError(f"{path}: has no video frames")
        return frames[len(frames) // 2]

    scorer = StyleScorer(middle_frame(source), style, network, size, lpips)
    scores = []
    for path in outputs:
        if not _is_video(path):
            raise BrushworkError(f"{path}: the content is a video, so the outputs must be videos too")
        score = scorer.score(middle_frame(path), str(path))
        score.flicker = measure_flicker(source, path)
        score.temporal_error = measure_temporal_error(source, path)
        scores.append(score)
    return sorted(scores, key=lambda s: s.artfid_lite0)


class LpipsVgg:
    """LPIPS (Zhang et al. 2018), VGG variant, from weights the user has: the ``lpips`` package's
    ``vgg.pth`` (its linear layers, keys ``lin0.model.1.weight`` …) and torchvision's VGG-16 (any file
    :func:`brushwork.backbones.load_backbone` accepts)."""

    LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")

    def __init__(self, lin_weights: str | os.PathLike, vgg16_weights: str | os.PathLike | None = None):
        from brushwork.backbones import load_backbone
        from brushwork.backbones.weights import load_state_dict_file

        state = load_state_dict_file(lin_weights)
        try:
            self.lins = [state[f"lin{i}.model.1.weight"].float().flatten() for i in range(len(self.LAYERS))]
        except KeyError as exc:
            raise BrushworkError(f"{lin_weights}: not LPIPS linear-layer weights (no {exc.args[0]})") from exc
        self.network = load_backbone("vgg16", vgg16_weights)
        widths = [64, 128, 256, 512, 512]
        if [len(w) for w in self.lins] != widths:
            raise BrushworkError(f"{lin_weights}: LPIPS weights for another network (not VGG)")

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> float:
        fa, fb = self.network(a, self.LAYERS), self.network(b, self.LAYERS)
        total = 0.0
        for name, lin in zip(self.LAYERS, self.lins, strict=True):
            na = fa[name] / (fa[name].norm(dim=1, keepdim=True) + 1e-10)
            nb = fb[name] / (fb[name].norm(dim=1, keepdim=True) + 1e-10)
            total += float(((na - nb).square() * lin.view(1, -1, 1, 1)).sum(1).mean())
        return total


def write_csv(scores: Sequence[StyleScore], path: str | os.PathLike) -> Path:
    import csv

    from brushwork.files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(StyleScore.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(s.to_dict() for s in scores)

    return atomic_write(path, write)


def write_contact_sheet(scores: Sequence[StyleScore], path: str | os.PathLike, key: str = "artfid_lite0",
                        thumb: int = 192, columns: int = 4, force: bool = False) -> Path:  # fmt: skip
    """The scored images in order, each labelled with its place and ``key`` figure, as one PNG."""
    from PIL import ImageDraw, ImageOps

    from brushwork.media import load_image
    from brushwork.output import save_output
    from brushwork.records import new_record

    rows = (len(scores) + columns - 1) // columns
    label = 18
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for place, s in enumerate(scores):
        x, y = (place % columns) * thumb, (place // columns) * (thumb + label)
        tile = ImageOps.pad(load_image(s.path), (thumb, thumb), color="white")
        sheet.paste(tile, (x, y + label))
        draw.text((x + 4, y + 3), f"{place + 1}. {key} {getattr(s, key):.3f}  {Path(s.path).name}"[:40], fill="black")
    record = new_record("judge-sheet", {"sorted_by": key, "thumb": thumb, "columns": columns},
                        inputs={"images": [{"path": s.path, key: getattr(s, key)} for s in scores]})  # fmt: skip
    return save_output(sheet, path, record, force=force)
