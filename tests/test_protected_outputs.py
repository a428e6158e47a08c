"""Every engine output leaves protected by default: watermarked, tagged, registered; opt-outs are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

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


def test_small_outputs_carry_a_fragile_mark_losslessly_and_tiny_ones_none(tmp_path):
    from brushwork.protect import watermark

    small = tmp_path / "small.png"
    make_image(64, 48, kind="noise").save(small)
    out = tmp_path / "out.png"
    assert main(["fast", "apply", str(MODEL), str(small), "-o", str(out)]) == 0
    note = read_record(out).extra["protection"]
    assert note["watermark"] and "lossless copies only" in note["watermark_fragile"]
    stripped = tmp_path / "stripped.png"  # a re-save that drops every metadata chunk but keeps the pixels
    Image.open(out).convert("RGB").save(stripped)
    assert note["watermark_reads_back"]
    assert watermark.detect(Image.open(stripped)).work_id == note["work_id"]
    # A lossy file of the same size would lose so fragile a mark at once: noted, not marked.
    jpeg = tmp_path / "out.jpg"
    assert main(["fast", "apply", str(MODEL), str(small), "-o", str(jpeg)]) == 0
    note = read_record(jpeg).extra["protection"]
    assert note["watermark"] is None and "under 128 px" in note["watermark_skipped"]
    tiny = tmp_path / "tiny.png"
    make_image(40, 32).save(tiny)  # under 48 px (a GAN's 32 px samples): never marked, and said so
    assert main(["fast", "apply", str(MODEL), str(tiny), "-o", str(tmp_path / "tiny-out.png")]) == 0
    assert "under 48 px" in read_record(tmp_path / "tiny-out.png").extra["protection"]["watermark_skipped"]
