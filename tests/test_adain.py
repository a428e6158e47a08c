import numpy as np
import pytest
import torch

from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.records import read_record
from brushwork.style.adain import AdainConfig, AdainModel, adain, apply_adain, load_adain, train_adain
from brushwork.style.losses import channel_mean_std
from tests.conftest import TinyNet, make_image

PHOTO = make_image(40, 32, 3, "gradient")
STYLE_A = make_image(40, 40, 1, "stripes")
STYLE_B = make_image(40, 40, 2, "noise")


@pytest.fixture
def folders(tmp_path):
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i in range(3):
        make_image(40, 36, seed=i, kind="gradient").save(content / f"c{i}.png")
        make_image(36, 40, seed=10 + i, kind="noise" if i else "stripes").save(style / f"s{i}.png")
    return content, style


def tiny(**kw):
    base = dict(image_size=32, batch_size=2, steps=6, checkpoint_every=3, learning_rate=1e-3, decoder_width=16)
    base.update(kw)
    return AdainConfig(**base)


def test_adain_moves_statistics():
    content, style = torch.rand(2, 5, 6, 7), torch.rand(2, 5, 4, 4) * 3 + 1
    out = adain(content, style)
    for a, b in zip(channel_mean_std(out), channel_mean_std(style), strict=True):
        assert torch.allclose(a, b, atol=1e-3)


def test_decoder_restores_size(tiny_net):
    model = AdainModel(tiny_net, "relu2_1", 16)
    assert model(torch.rand(1, 3, 33, 47), torch.rand(1, 3, 20, 30)).shape == (1, 3, 33, 47)


def test_training_reduces_loss_and_resumes_exactly(tiny_net, folders, tmp_path):
    content, style = folders
    losses = []
    train_adain(
        content,
        style,
        tmp_path / "long.safetensors",
        tiny_net,
        tiny(steps=40, learning_rate=1e-2),
        on_step=lambda s: losses.append(s.losses["content"] + s.losses["style"]),
    )
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])

    straight, halves = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train_adain(content, style, straight, tiny_net, tiny(steps=6))
    train_adain(content, style, halves, tiny_net, tiny(steps=3))
    train_adain(content, style, halves, tiny_net, resume=True, resume_steps=6)
    a, b = load_adain(straight, tiny_net), load_adain(halves, tiny_net)
    for p, q in zip(a.decoder.state_dict().values(), b.decoder.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_apply_controls(tiny_net, folders, tmp_path):
    content, style = folders
    path = tmp_path / "m.safetensors"
    train_adain(content, style, path, tiny_net, tiny(steps=2))
    model = load_adain(path, tiny_net)
    arr = lambda im: np.asarray(im).astype(int)  # noqa: E731
    # alpha 0 decodes the photo's own features: the style image no longer matters.
    assert np.array_equal(
        arr(apply_adain(model, [PHOTO], [STYLE_A], alpha=0)[0]), arr(apply_adain(model, [PHOTO], [STYLE_B], alpha=0)[0])
    )
    assert not np.array_equal(
        arr(apply_adain(model, [PHOTO], [STYLE_A])[0]), arr(apply_adain(model, [PHOTO], [STYLE_B])[0])
    )
    # Weights 1:0 are the first style alone; a white mask is the first style, a black one the second.
    only_a = arr(apply_adain(model, [PHOTO], [STYLE_A])[0])
    assert np.abs(arr(apply_adain(model, [PHOTO], [STYLE_A, STYLE_B], weights=[1, 0])[0]) - only_a).max() <= 1
    white, black = make_image(8, 8, kind="gradient").point(lambda _: 255), make_image(8, 8).point(lambda _: 0)
    assert np.abs(arr(apply_adain(model, [PHOTO], [STYLE_A, STYLE_B], mask=white)[0]) - only_a).max() <= 1
    only_b = arr(apply_adain(model, [PHOTO], [STYLE_B])[0])
    assert np.abs(arr(apply_adain(model, [PHOTO], [STYLE_A, STYLE_B], mask=black)[0]) - only_b).max() <= 1
    assert apply_adain(model, [PHOTO], [STYLE_A], preserve_colors="histogram")[0].size == PHOTO.size
    assert apply_adain(model, [PHOTO], [STYLE_A], preserve_colors="luminance", image_size=60)[0].size == (60, 48)
    for kwargs, message in [
        ({"alpha": 2}, "alpha"),
        ({"weights": [1, 2]}, "weights"),
        ({"mask": white}, "exactly two styles"),
    ]:
        with pytest.raises(BrushworkError, match=message):
            apply_adain(model, [PHOTO], [STYLE_A], **kwargs)[0]


def test_other_backbone_is_refused(tiny_net, folders, tmp_path):
    content, style = folders
    path = tmp_path / "m.safetensors"
    train_adain(content, style, path, tiny_net, tiny(steps=1))
    with pytest.raises(BrushworkError, match="trained on the tiny backbone with other weights"):
        load_adain(path, TinyNet(seed=5).freeze())


def test_onnx_export_and_cli(tiny_net, folders, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    content, style = folders
    path = tmp_path / "m.safetensors"
    train_adain(content, style, path, tiny_net, tiny(steps=1))
    # The CLI loads backbones by name: hand it the tiny one.
    monkeypatch.setattr("brushwork.backbones.load_backbone", lambda *a, **k: tiny_net)
    out = tmp_path / "m.onnx"
    assert main(["adain", "export", str(path), "-o", str(out)]) == 0
    from brushwork.style.export import max_difference

    model = load_adain(path, tiny_net)
    diff = max_difference(model, out, {"content": torch.rand(2, 3, 30, 44), "style": torch.rand(2, 3, 52, 36)})
    assert diff < 1e-4
    photo, style_png, result = tmp_path / "p.png", tmp_path / "s.png", tmp_path / "r.png"
    PHOTO.save(photo)
    STYLE_A.save(style_png)
    assert (
        main(
            [
                "adain",
                "apply",
                str(path),
                str(photo),
                "--style",
                str(style_png),
                str(style_png),
                "--style-weights",
                "1,2",
                "--alpha",
                "0.5",
                "-o",
                str(result),
            ]
        )
        == 0
    )
    record = read_record(result)
    params = record.parameters
    assert record.engine == "adain" and params["strength"] == 0.5 and params["style_blend_weights"] == [1, 2]
    assert main(["adain", "apply", str(path), str(photo), "--style", str(style_png), "-o", str(result)]) == 2
    assert (
        main(
            [
                "adain",
                "train",
                "--content-dir",
                str(content),
                "--style-dir",
                str(tmp_path / "none"),
                "-o",
                str(tmp_path / "n.safetensors"),
                "--steps",
                "1",
                "-q",
            ]
        )
        == 2
    )
    assert "style folder not found" in capsys.readouterr().err


def test_bundled_decoder_follows_the_style_it_is_given():
    """The shipped Lite0 decoder, on two paintings: each result takes on its own painting's colours."""
    from brushwork.backbones import load_backbone
    from brushwork.cli import EXAMPLES
    from brushwork.media import image_to_tensor, load_image

    model = load_adain(EXAMPLES / "adain-lite0.safetensors", load_backbone("lite0"))
    photo = load_image(EXAMPLES / "tubingen.jpg")
    styles = [load_image(EXAMPLES / name) for name in ("starry_night.jpg", "shipwreck.jpg")]
    means = [channel_mean_std(image_to_tensor(s.resize((128, 128))))[0].flatten() for s in styles]
    for style, mean in zip(styles, means, strict=True):
        out = apply_adain(model, [photo], [style], image_size=128, style_size=128)[0]
        assert out.size == (128, 96)
        got = channel_mean_std(image_to_tensor(out))[0].flatten()
        other = means[1] if mean is means[0] else means[0]
        assert (got - mean).abs().sum() < (got - other).abs().sum(), (got, mean, other)


def test_encoder_name_follows_a_lite0_model_unless_told_otherwise():
    from brushwork.cli import EXAMPLES
    from brushwork.style.adain import encoder_name

    bundled = EXAMPLES / "adain-lite0.safetensors"
    assert encoder_name(bundled) == "lite0"
    assert encoder_name(bundled, "vgg19") == "vgg19"
    assert encoder_name(bundled, "auto", "my-vgg.pth") == "auto"
