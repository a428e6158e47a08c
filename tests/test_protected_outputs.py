"""Every engine output leaves protected by default: watermarked, tagged, registered; opt-outs are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

import brushwork
from brushwork import api
from brushwork.cli import main
from brushwork.protect.verify import INTACT, verify
from brushwork.records import read_record
from tests.conftest import make_image

MODEL = Path(api.__file__).parent / "examples" / "starry_night-fast.safetensors"


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    make_image(192, 144, seed=3, kind="noise").save(path)
    return path


def test_cli_output_is_watermarked_registered_and_verifies(tmp_path, photo, capsys):
    out = tmp_path / "out.png"
    assert main(["fast", "apply", str(MODEL), str(photo), "-o", str(out)]) == 0
    note = read_record(out).extra["protection"]
    assert note["watermark"] and note["work_id"] and note["registered"] and note["opted_out"] == []
    report = verify(out)
    assert report.verdict == INTACT, report
    assert report.watermark["work_id"] == note["work_id"]
    assert report.registry["id"] == note["work_id"] and report.registry["path"] == str(out.resolve())


def test_opt_outs_are_recorded(tmp_path, photo):
    out = tmp_path / "plain.png"
    assert main(["fast", "apply", str(MODEL), str(photo), "-o", str(out), "--no-watermark", "--no-register"]) == 0
    note = read_record(out).extra["protection"]
    assert note["watermark"] is None and set(note["opted_out"]) == {"watermark", "registry"}
    assert verify(out).watermark["work_id"] is None


def test_python_save_protects_by_default_and_none_opts_out(tmp_path, photo):
    image = api.fast_apply(MODEL, photo)
    brushwork.save(image, tmp_path / "a.png")
    assert read_record(tmp_path / "a.png").extra["protection"]["watermark"]
    brushwork.save(api.fast_apply(MODEL, photo), tmp_path / "b.png", protection=None)
    assert "protection" not in read_record(tmp_path / "b.png").extra


def test_tiny_outputs_are_noted_not_marked(tmp_path):
    small = tmp_path / "small.png"
    make_image(48, 32).save(small)
    out = tmp_path / "out.png"
    assert main(["fast", "apply", str(MODEL), str(small), "-o", str(out)]) == 0
    note = read_record(out).extra["protection"]
    assert note["watermark"] is None and "too small" in note["watermark_skipped"]
