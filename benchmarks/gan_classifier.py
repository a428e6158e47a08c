"""Does a conditional Fashion-MNIST GAN draw the class it is asked for?

    python benchmarks/gan_classifier.py RUN_DIR [--data ../shared/datasets/fashion-mnist]
        [--per-class 500] [--truncation 0.7] [--classifier /tmp/fm-classifier.safetensors]

A small CNN is trained on the real Fashion-MNIST training set (at the run's resolution; its accuracy
on the real test set is printed as the ceiling to read the result against), then classifies
``--per-class`` samples of every class from the run's EMA generator. Prints the share of samples
recognised as the class they were asked for, overall and per class. The classifier belongs to this
benchmark, not the product. ``--classifier`` caches its weights between runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from brushwork.gan.data import load_fashion_mnist
from brushwork.gan.model import load_run
from brushwork.gan.sample import generate


def classifier() -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]  # fmt: skip

    return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(128, 10))  # fmt: skip


def as_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or generator output -1..1 -> float -1..1, one channel."""
    x = images.float().div(127.5).sub(1) if images.dtype == torch.uint8 else images.float().clamp(-1, 1)
    return x.mean(1, keepdim=True) if x.shape[1] == 3 else x


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    net.eval()
    return torch.cat([net(as_input(chunk)).argmax(1) for chunk in x.split(500)])


def train_classifier(folder: Path | None, resolution: int, epochs: int) -> nn.Module:
    data = load_fashion_mnist(folder, resolution, "train")
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(data.images) // 128 + 1))
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        net.train()
        t = time.perf_counter()
        for idx in torch.randperm(len(data.images), generator=gen).split(128):
            x = as_input(data.images[idx])
            # Small shifts and flips so the classifier does not lean on pixel-exact positions.
            x = torch.roll(x, tuple(torch.randint(-2, 3, (2,), generator=gen).tolist()), dims=(2, 3))
            if torch.rand(1, generator=gen).item() < 0.5:
                x = x.flip(3)
            loss = nn.functional.cross_entropy(net(x), data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {time.perf_counter() - t:.0f} s")
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a conditional Fashion-MNIST run folder")
    parser.add_argument("--data", type=Path, help="folder of Fashion-MNIST IDX files (default: Debian's or cache)")
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--truncation", type=float)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--classifier", type=Path, help="cache for the classifier's weights (.safetensors)")
    args = parser.parse_args()
    torch.manual_seed(0)
    g, cfg, classes = load_run(args.run)
    if cfg.classes != 10:
        raise SystemExit(f"{args.run}: not a conditional 10-class run")
    if args.classifier and args.classifier.exists():
        net = classifier()
        net.load_state_dict(load_file(args.classifier))
    else:
        net = train_classifier(args.data, cfg.resolution, args.epochs)
        if args.classifier:
            save_file(net.state_dict(), args.classifier)
    test = load_fashion_mnist(args.data, cfg.resolution, "t10k")
    real_acc = (predict(net, test.images) == test.labels).float().mean().item()
    seeds = list(range(args.per_class))
    per_class = {}
    for label, name in enumerate(classes):
        hits = predict(net, generate(g, cfg, seeds, label, args.truncation)) == label
        per_class[name] = round(hits.float().mean().item(), 4)
    overall = sum(per_class.values()) / len(per_class)
    print(json.dumps({"run": str(args.run), "classifier_test_accuracy": round(real_acc, 4),
                      "samples_recognised": round(overall, 4), "per_class": per_class,
                      "per_class_samples": args.per_class, "truncation": args.truncation}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
