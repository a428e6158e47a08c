"""The record of a run and the one output exit: every format carries it, hostile files fail in one line."""

import json
import os
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

import brushwork
from brushwork.errors import BrushworkError
from brushwork.output import save_output
from brushwork.records import Record, attach, describe_input, infotext, new_record, read_record, record_of
from tests.conftest import make_image


def _record(tmp_path) -> Record:
    content = tmp_path / "photo.png"
    make_image().save(content)
    return new_record("stylize", {"iterations": 30, "style_weight": 20.0, "style_blend_weights": (3, 7),
                                      "scales": None, "optimizer": "lbfgs"},
                      inputs={"content": describe_input(content), "styles": [{"name": "a, b.jpg"}]}, seed=4,
                      models={"backbone": {"name": "vgg19"}},
                      device="cpu")  # fmt: skip


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_every_format_carries_the_record(tmp_path, suffix):
    record = _record(tmp_path)
    path = save_output(make_image(), tmp_path / f"out{suffix}", record)
    back = read_record(path)
    assert back.to_dict() == record.to_dict()
    assert back.parameters["style_blend_weights"] == [3, 7] and back.seed == 4 and back.finished is not None
    assert len(back.inputs["content"]["sha256"]) == 64 and back.versions["torch"]
    assert back.inputs["content"] == {"name": "photo.png", "sha256": back.inputs["content"]["sha256"]}  # no folder
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_png_infotext_is_a1111_style(tmp_path):
    record = _record(tmp_path)
    path = save_output(make_image(48, 32), tmp_path / "out.png", record)
    with Image.open(path) as img:
        first, second = img.info["parameters"].split("\n")
    assert first == "brushwork stylize: photo.png in the style of a, b.jpg"
    assert second.startswith("Sampler: L-BFGS, Steps: 30, Seed: 4, Size: 48x32, Model: vgg19, Engine: stylize, ")
    assert "Style weight: 20.0" in second and 'Style blend weights: "3,7"' in second
    assert infotext(record, (48, 32)) == img.info["parameters"]


def test_exit_refuses_overwrite_wrong_suffix_and_missing_record(tmp_path):
    record = _record(tmp_path)
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    with pytest.raises(BrushworkError, match="--force"):
        save_output(make_image(), out, record)
    assert out.read_bytes() == b"precious"
    with pytest.raises(BrushworkError, match="output must be"):
        save_output(make_image(), tmp_path / "out.bmp", record)
    with pytest.raises(BrushworkError, match="no brushwork record"):
        save_output(make_image(), tmp_path / "new.png")
    image = attach(make_image(), record)
    assert record_of(image) is record
    assert brushwork.save(image, tmp_path / "new.png") == tmp_path / "new.png"  # the documented way keeps it
    assert read_record(tmp_path / "new.png").engine == "stylize"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    record = _record(tmp_path)

    def half_written(self, data):  # the image is encoded in memory; the disk fills while writing it
        with open(self, "wb") as fh:
            fh.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_written)
    with pytest.raises(BrushworkError, match="disk is full"):  # one line for the user, not a traceback
        save_output(make_image(), path, record, force=True)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "photo.png"]


def test_written_files_get_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_output(make_image(), tmp_path / "shared.png", _record(tmp_path))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_files_from_before_records_still_read(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", json.dumps({"engine": "fast", "strength": 0.5, "model": {"name": "m"}}))
    make_image().save(tmp_path / "old.png", pnginfo=info)
    record = read_record(tmp_path / "old.png")
    assert record.engine == "fast" and record.parameters["strength"] == 0.5 and record.models["model"]["name"] == "m"


def _png_with_text(path, key, text):
    info = PngImagePlugin.PngInfo()
    info.add_text(key, text, zip=True)
    make_image().save(path, pnginfo=info)


@pytest.mark.parametrize(
    "case, message",
    [
        ("foreign", "no brushwork parameters"),
        ("nested", "not valid brushwork JSON"),
        ("list", "not a JSON object"),
        ("no-engine", "not a brushwork record"),
        ("bad-field", "not a brushwork record"),
        ("inflates", "too large"),
        ("bomb", None),
        ("not-image", "not an image"),
        ("folder", "is a folder"),
        ("missing", "no such file"),
    ],
)
def test_hostile_or_foreign_files_fail_in_one_line(tmp_path, case, message):
    path = tmp_path / "x.png"
    if case == "foreign":
        make_image().save(path)
    elif case == "nested":
        _png_with_text(path, "brushwork", "[" * 200_000 + "]" * 200_000)
    elif case == "list":
        _png_with_text(path, "brushwork", "[1, 2]")
    elif case == "no-engine":
        _png_with_text(path, "brushwork", json.dumps({"schema": "brushwork.record/1"}))
    elif case == "bad-field":
        _png_with_text(path, "brushwork", json.dumps({"schema": "brushwork.record/1", "engine": "x", "inputs": 3}))
    elif case == "inflates":
        # 64 MB of spaces in 64 kB: past Pillow's text-chunk limit.
        chunk = b"brushwork\0\0" + zlib.compress(b" " * (64 << 20), 9)
        data = bytearray()
        make_image().save(tmp_path / "plain.png")
        plain = (tmp_path / "plain.png").read_bytes()
        end = plain.rindex(b"IEND") - 4
        data += plain[:end] + len(chunk[:]).to_bytes(4, "big") + b"zTXt" + chunk
        data += zlib.crc32(b"zTXt" + chunk).to_bytes(4, "big") + plain[end:]
        path.write_bytes(bytes(data))
    elif case == "bomb":
        # 30000 x 30000 declared: the header alone; the record is still read without decoding pixels.
        Image.new("1", (30000, 30000)).save(path)
        with pytest.raises(BrushworkError, match="no brushwork parameters"):
            read_record(path)
        return
    elif case == "not-image":
        path.write_text("hello")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(BrushworkError, match=message):
        read_record(path)


def test_cli_info_prints_the_record_and_refuses_hostile_files(tmp_path, capsys):
    from brushwork.cli import main

    path = save_output(make_image(), tmp_path / "out.jpg", _record(tmp_path))
    assert main(["info", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "stylize"
    _png_with_text(tmp_path / "bad.png", "brushwork", "[" * 100_000)
    assert main(["info", str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error:") and err.count("\n") == 1


def test_sixteen_bit_tiff_keeps_the_engine_precision(tmp_path):
    """A 16-bit TIFF holds the engine's result at 16 bits (not 8 bits scaled up) and carries the record."""
    import numpy as np
    import tifffile
    import torch

    from brushwork.media import high_precision, tensor_to_image

    ramp = torch.linspace(0, 1, 1000).repeat(3, 4, 1)  # a smooth ramp: 1000 levels, more than 8 bits hold
    with high_precision():
        image = tensor_to_image(ramp)
    record = _record(tmp_path)
    path = save_output(image, tmp_path / "print.tif", record, bit_depth=16)
    pixels = tifffile.imread(path)
    assert pixels.dtype == np.uint16 and pixels.shape == (4, 1000, 3)
    assert len(np.unique(pixels[0, :, 0])) > 900  # 8 bits scaled up would give 256
    assert read_record(path).to_dict() == record.to_dict()
    with pytest.raises(BrushworkError, match="TIFF only"):
        save_output(image, tmp_path / "print.png", record, bit_depth=16)
    with pytest.raises(BrushworkError, match="8-bit pixels only"):
        save_output(tensor_to_image(ramp), tmp_path / "plain.tif", record, bit_depth=16)


def test_sixteen_bit_tiff_keeps_a_protection_mark(tmp_path):
    """A mark added at 8 bits by the protection hook reaches the 16-bit file, and the precision stays."""
    import numpy as np
    import tifffile
    import torch

    from brushwork.media import high_precision, tensor_to_image

    class Brighten:
        def before_write_many(self, images, records, paths):
            marked = []
            for image in images:
                arr = np.asarray(image).copy()
                arr[:2] = np.minimum(arr[:2].astype(int) + 10, 255)
                marked.append(Image.fromarray(arr))
            return marked

        def seal(self, data, record, path):
            return data

        def abandon_many(self, records):
            pass

        def after_write_many(self, paths, records):
            pass

    with high_precision():
        image = tensor_to_image(torch.linspace(0, 0.9, 1000).repeat(3, 4, 1))
    path = save_output(image, tmp_path / "print.tif", _record(tmp_path), protection=Brighten(), bit_depth=16)
    pixels = tifffile.imread(path).astype(int)
    assert (pixels[:2] - pixels[2:]).mean() > 9 * 257  # the mark
    assert len(np.unique(pixels[3, :, 0])) > 900  # still 16 bits where unmarked


def _examples():
    from pathlib import Path

    return Path(brushwork.__file__).resolve().parent / "examples"


def test_a1111_reader_sees_sampler_steps_and_seed_of_every_engine(tmp_path, tiny_net):
    """sd-parsers (what image tools use to read A1111's PNG chunk) finds Sampler, Steps and Seed, each honest."""
    sd_parsers = pytest.importorskip("sd_parsers")
    content, style = tmp_path / "photo.png", tmp_path / "style.png"
    make_image(40, 32).save(content)
    make_image(40, 32, 1, "noise").save(style)
    examples = _examples()
    made = {
        "stylize": brushwork.stylize(
            content, [style], backbone=tiny_net, image_size=32, iterations=2, seed=7, optimizer="adam"
        ),  # fmt: skip
        "fast": brushwork.fast_apply(examples / "starry_night-fast.safetensors", content),
        "adain": brushwork.adain_apply(examples / "adain-lite0.safetensors", content, style),
    }
    expected = {"stylize": ("Adam", "2", "7"), "fast": ("feed-forward network (one pass)", "1", "none (deterministic)"),
                "adain": ("feed-forward network (one pass)", "1", "none (deterministic)")}  # fmt: skip
    for engine, image in made.items():
        path = brushwork.save(image, tmp_path / f"{engine}.png", protection=None)
        with Image.open(path) as img:
            info = sd_parsers.ParserManager().parse(img)
        assert info is not None, engine
        sampler = info.samplers[0]
        assert (sampler.name, sampler.parameters["steps"], sampler.parameters["seed"]) == expected[engine]
        assert info.metadata["Engine"] == engine
    record = record_of(made["stylize"])
    assert not [k for k in record.parameters if k.startswith("clip_") or k == "style_text"]  # no words: no CLIP keys
    assert "style_blend" not in record.parameters and "style_blend_weights" in record.parameters


def test_an_old_style_record_still_replays(tmp_path, capsys):
    """Records written before the names were unified (engine "gatys", "style_blend", unused CLIP keys)."""
    from brushwork.cli import main

    content, a, b = tmp_path / "photo.png", tmp_path / "a.png", tmp_path / "b.png"
    make_image(40, 32).save(content)
    make_image(40, 32, 1, "noise").save(a)
    make_image(40, 32, 2, "stripes").save(b)
    old = {"iterations": 3, "image_size": 32, "style_blend": [1, 3], "backbone": "lite0", "seed": 2,
           "style_text": None, "clip_model": "ViT-B-32", "clip_pretrained": "openai", "clip_weight": 5.0,
           "clip_patch_weight": 20.0, "clip_crops": 8, "clip_crop_fraction": 0.4, "clip_threshold": 0.7}  # fmt: skip
    record = new_record("gatys", old, inputs={"content": describe_input(content), "styles": [describe_input(a),
                        describe_input(b)]}, seed=2)  # fmt: skip
    save_output(make_image(32, 26), tmp_path / "old.png", record)
    assert read_record(tmp_path / "old.png").engine == "stylize"
    again = tmp_path / "again.png"
    argv = ["stylize", str(content), "--style", str(a), str(b), "--params-from", str(tmp_path / "old.png")]
    assert main([*argv, "-q", "--no-sign", "--no-register", "--no-watermark", "-o", str(again)]) == 0, (
        capsys.readouterr().err
    )
    params = read_record(again).parameters
    assert params["style_blend_weights"] == [1, 3] and params["iterations"] == 3 and params["seed"] == 2
    assert read_record(again).engine == "stylize" and "clip_model" not in params
