"""Ranking a style library by words: the first run (every image embedded) against later ones (embeddings read
from the SHA-256 cache), with an image tower of CLIP ViT-B/32's shape.

open_clip may not import here (see README), so the tower is built from torch.nn with ViT-B/32's layout
(32 px patches at 224 px, 12 pre-norm blocks of width 768, 12 heads, a 512-d projection) and random
weights: the compute is the same, the ranking meaningless. Speed only. The library is N JPEGs (crops and
flips of the bundled and shared pictures, 800 px on the long side) in a temporary folder.

    python benchmarks/style_library_speed.py [--images 120]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageEnhance, ImageOps

import brushwork
from brushwork.style.clip_guidance import Clip
from brushwork.style.style_library import rank_library

EXAMPLES = Path(brushwork.__file__).parent / "examples"
#: /work/shared beside the repository (or beside a worktree's parent), when present: more pictures.
SHARED = next((p / "shared" / "images" for p in Path(__file__).resolve().parents if (p / "shared" / "images").is_dir()),
              EXAMPLES / "none")  # fmt: skip


class VitB32Shaped(torch.nn.Module):
    """CLIP ViT-B/32's image tower's shape, random weights; a bag of bytes for text."""

    def __init__(self):
        super().__init__()
        self.visual = torch.nn.Module()
        self.visual.image_size = 224
        self.patches = torch.nn.Conv2d(3, 768, 32, 32, bias=False)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, 768) * 0.02)
        self.pos = torch.nn.Parameter(torch.randn(1, 50, 768) * 0.01)
        self.pre, self.post = torch.nn.LayerNorm(768), torch.nn.LayerNorm(768)
        layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, 0.0, "gelu", batch_first=True, norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)
        self.proj = torch.nn.Linear(768, 512, bias=False)
        self.text = torch.nn.EmbeddingBag(256, 512)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1) + self.pos
        return self.proj(self.post(self.blocks(self.pre(tokens))[:, 0]))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)


class ByteTokenizer:
    context_length = 77

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = [list(t.encode())[:77] for t in texts]
        return torch.tensor([r + [0] * (77 - len(r)) for r in rows])


def make_library(folder: Path, n: int) -> None:
    sources = sorted(EXAMPLES.glob("*.jpg")) + sorted(SHARED.glob("*/*.jpg")) + sorted(SHARED.glob("*/*.png"))
    pictures = [Image.open(p).convert("RGB") for p in sources]
    for i in range(n):
        picture = pictures[i % len(pictures)]
        w, h = picture.size
        k = 1 + (i // len(pictures)) % 12  # each round crops differently, and the brightness varies: no duplicates
        crop = picture.crop((k * w // 40, k * h // 40, w - k * w // 50, h - k * h // 50))
        crop = ImageEnhance.Brightness(ImageOps.mirror(crop) if i % 2 else crop).enhance(0.8 + 0.4 * i / n)
        crop.thumbnail((800, 800))
        crop.save(folder / f"style-{i:04d}.jpg", quality=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=120)
    args = ap.parse_args()
    torch.manual_seed(0)
    clip = Clip.wrap(VitB32Shaped(), ByteTokenizer(), "ViT-B/32-shaped", "random", identity="benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        library, cache = Path(tmp) / "library", Path(tmp) / "cache.sqlite"
        library.mkdir()
        make_library(library, args.images)
        size = sum(p.stat().st_size for p in library.iterdir()) / 1e6
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.images} JPEGs, {size:.0f} MB")
        runs = []
        for text in ("stormy sea at night", "a calm watercolour", "stormy sea at night"):
            start = time.perf_counter()
            pick = rank_library(clip, text, library, cache=cache)
            runs.append((time.perf_counter() - start, pick.cached))
        for label, (seconds, cached) in zip(("first (cold cache)", "second (other text)", "third (same text)"), runs,
                                            strict=True):  # fmt: skip
            print(f"{label:>20}: {seconds:6.2f} s, {1000 * seconds / args.images:6.1f} ms/image, {cached} cached")
        start = time.perf_counter()
        rank_library(clip, "stormy sea at night", library, cache=None)
        seconds = time.perf_counter() - start
        print(f"{'no cache':>20}: {seconds:6.2f} s, {1000 * seconds / args.images:6.1f} ms/image")


if __name__ == "__main__":
    main()
