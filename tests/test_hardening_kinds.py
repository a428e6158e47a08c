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


# -- 7: a full disk while a trainer saves ------------------------------------------------------------


@pytest.fixture
def refusing_disk(monkeypatch):
    """Every checkpoint write meets a real OS refusal inside safetensors' own writer: a file-size limit
    (RLIMIT_FSIZE, EFBIG) set only while it writes, as a full disk (ENOSPC) would refuse it."""
    import resource
    import signal

    import brushwork.checkpoints as checkpoints

    real = checkpoints.save_file

    def save_file(tensors, path, metadata=None):
        old = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, old[1]))
        try:
            return real(tensors, path, metadata=metadata)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old)
            signal.signal(signal.SIGXFSZ, handler)

    monkeypatch.setattr(checkpoints, "save_file", save_file)


def test_full_disk_while_training_is_one_line_and_leaves_no_partial_file(tmp_path, refusing_disk, tiny_net,
                                                                         monkeypatch, capsys):  # fmt: skip
    from tests.conftest import make_image

    monkeypatch.setattr("brushwork.backbones.load_backbone", lambda *a, **k: tiny_net)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        make_image(40, 36, i).save(photos / f"p{i}.png")
    make_image(40, 40, 5, "stripes").save(tmp_path / "style.png")
    out = tmp_path / "models"
    out.mkdir()
    fast = ["fast", "train", "--style", str(tmp_path / "style.png"), "--content-dir", str(photos), "-q",
            "-o", str(out / "m.safetensors"), "--steps", "1", "--image-size", "32", "--batch-size", "1"]  # fmt: skip
    assert main(fast) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "could not write" in err and "m.safetensors" in err
    assert list(out.iterdir()) == []  # no partial model, no temp file

    data = _grey_folder(tmp_path / "d")
    run = tmp_path / "run"
    gan = ["gan", "train", str(data), "--out", str(run), "--steps", "1", "--batch-size", "2", "--latent", "8",
           "--g-width", "8", "--d-width", "8", "--sample-every", "1", "--eval-every", "0", "-q"]  # fmt: skip
    assert main(gan) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and err.count("\n") == 1 and "could not write" in err
    assert not run.exists()  # a run that never reached its first checkpoint leaves nothing

