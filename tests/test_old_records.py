"""Outputs made before ``brushwork/pipelines/`` (``tests/fixtures/old_records``, see its ``make.py``) still
replay: ``--params-from`` takes their settings, the new record holds the same parameters, and the picture
comes out as it did (within a rounding step or two: the fixtures were made on another machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import api
from brushwork.cli import main
from brushwork.records import read_record

OLD = Path(__file__).resolve().parent / "fixtures" / "old_records"
EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"
UNMARKED = ["--no-watermark", "--no-sign", "--no-register", "-q"]
FAST, ADAIN = str(EXAMPLES / "starry_night-fast.safetensors"), str(EXAMPLES / "adain-lite0.safetensors")
PHOTO, STYLE = str(OLD / "photo.png"), str(OLD / "style.png")

CASES = {
    "gatys.png": ["stylize", PHOTO, "--style", STYLE],
    "fast.png": ["fast", "apply", FAST, PHOTO],
    "adain.png": ["adain", "apply", ADAIN, PHOTO, "--style", STYLE],
}


def _kept(record) -> dict:
    """The parameters a run keeps today: a stylize run without words no longer records the CLIP settings."""
    return api.recorded_style_options(record.parameters) if record.engine == "stylize" else record.parameters


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_old_picture_replays(tmp_path, capsys, name):
    out = tmp_path / name
    assert main([*CASES[name], "--params-from", str(OLD / name), "-o", str(out), *UNMARKED]) == 0
    assert "differ from the inputs" not in capsys.readouterr().err
    old, new = read_record(OLD / name), read_record(out)  # an old record is read under today's names
    assert new.engine == old.engine and new.parameters == _kept(old)
    assert np.abs(_pixels(out) - _pixels(OLD / name)).mean() < 2.0


def test_an_old_gan_sample_replays(tmp_path):
    old_file = OLD / "gan-samples" / "seed00005.png"
    out = tmp_path / "samples"
    run = OLD / "gan-run"
    assert main(["gan", "sample", str(run), "--params-from", str(old_file), "-o", str(out), *UNMARKED]) == 0
    new_file = out / "seed00005.png"
    assert read_record(new_file).parameters == read_record(old_file).parameters
    assert np.abs(_pixels(new_file) - _pixels(old_file)).mean() < 2.0


def test_an_old_clip_replays(tmp_path):
    pytest.importorskip("av")
    from brushwork.media import read_frames

    out = tmp_path / "video.mp4"
    argv = ["video", str(OLD / "clip.mp4"), "--model", FAST, "--params-from", str(OLD / "video.mp4"), "-o", str(out)]
    assert main([*argv, *UNMARKED]) == 0
    old, new = read_record(OLD / "video.mp4"), read_record(out)
    assert new.parameters == old.parameters
    then, now = read_frames(OLD / "video.mp4"), read_frames(out)
    assert len(now) == len(then) == 3
    assert np.abs(np.asarray(now[-1], np.float32) - np.asarray(then[-1], np.float32)).mean() < 3.0
