"""Hostile input, round 2 (#20): each case a clear one-line error (CLI exit 2, REST 4xx), nothing half-written.

Each test stands for a kind of failure, not the one instance the issue found.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from brushwork.cli import main


def _grey_folder(root, n=6, size=36):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_gan_train_takes_resolution_and_channels_from_the_command_line(tmp_path, capsys):
    data = _grey_folder(tmp_path / "d")
    run = tmp_path / "run"
    argv = ["gan", "train", str(data), "--out", str(run), "--steps", "1", "--batch-size", "2", "--latent", "8",
            "--g-width", "8", "--d-width", "8", "--sample-every", "1", "--eval-every", "0",
            "--resolution", "32", "--channels", "1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    config = json.loads(capsys.readouterr().err.strip().splitlines()[0])["config"]
    assert (config["resolution"], config["channels"]) == (32, 1)  # colour photos, trained grey as asked

